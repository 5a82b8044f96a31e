"""The strategy templates by key. Templates live in code; agents store only the key."""

from agents.strategies import (
    bollinger_reversion,
    donchian_breakout,
    ema_macd,
    ensemble,
    rsi_reversion,
    sma_crossover,
)
from agents.strategies.base import StrategyTemplate
from core.errors import ValidationFailed

# Display order (stable): trend followers first, then mean reversion.
_TEMPLATES: tuple[StrategyTemplate, ...] = (
    sma_crossover.TEMPLATE,
    ema_macd.TEMPLATE,
    donchian_breakout.TEMPLATE,
    rsi_reversion.TEMPLATE,
    bollinger_reversion.TEMPLATE,
)
# An ensemble averages agents of the parameterised templates above (never another ensemble). It is
# not in all_templates() / template_choices(): those are the templates with a schema to search and a
# form to fill; an ensemble is created from its members (agents.services.ensembles).
ENSEMBLE = ensemble.make_template({t.key: t for t in _TEMPLATES})
_BY_KEY = {t.key: t for t in (*_TEMPLATES, ENSEMBLE)}
if len(_BY_KEY) != len(_TEMPLATES) + 1:
    raise RuntimeError("duplicate strategy template key")


class UnknownTemplateError(ValidationFailed, KeyError, ValueError):
    """No template has this key. args[0] (and str()) is a message listing the known keys; as a
    ValidationFailed it reaches the API as a 400 naming `strategy_template`."""

    def __init__(self, key):
        self.key = key
        message = f"unknown strategy template {key!r}; known: {', '.join(_BY_KEY)}"
        super().__init__({"strategy_template": message}, message)

    def __str__(self):
        # KeyError would repr() the message, quoting it.
        return str(self.args[0])


def get_template(key) -> StrategyTemplate:
    """The template with this key; UnknownTemplateError otherwise."""
    try:
        return _BY_KEY[key]
    except (KeyError, TypeError):  # TypeError: an unhashable key from untrusted input
        raise UnknownTemplateError(key) from None


def all_templates() -> list[StrategyTemplate]:
    """The parameterised templates (a schema to search), in display order."""
    return list(_TEMPLATES)


def listed_templates() -> list[StrategyTemplate]:
    """Every template an agent may have (GET /api/strategies): the parameterised ones, then the ensemble."""
    return [*_TEMPLATES, ENSEMBLE]


def template_choices() -> list[tuple[str, str]]:
    """(key, name) pairs for model/form choices."""
    return [(t.key, t.name) for t in _TEMPLATES]
