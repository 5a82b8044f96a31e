"""Creating and editing agents. Each agent starts with version 1: the template's defaults
merged with the params given."""

import math
import unicodedata

from django.conf import settings
from django.db import IntegrityError, transaction

from agents.models import (
    AgentStatus,
    Instrument,
    Objective,
    RefinerChoice,
    StrategyVersion,
    TradingAgent,
    VersionOrigin,
)
from agents.services.activity import log_activity
from agents.services.agent_lock import AgentGone, lock_agent_row
from agents.services.scheduling import unschedule_agent
from agents.strategies.base import ParamValidationError
from agents.strategies.registry import UnknownTemplateError, get_template
from core.errors import ValidationFailed

# Numeric settings an owner may edit, with their inclusive bounds.
NUMERIC_RULES = {
    "fee_bps": (0.0, 1000.0),
    "slippage_bps": (0.0, 1000.0),
    "test_fraction": (0.05, 0.5),
    "n_folds": (2, 20),
    "candidates_per_iteration": (1, 32),
    "initial_capital": (1.0, 1e12),
    "max_iterations_per_day": (1, 1000),
    "min_iteration_gap_minutes": (0, 7 * 24 * 60),
    "convergence_threshold": (0.0, 1.0),
    "random_seed": (0, 2**31 - 1),
}
INTEGER_FIELDS = {
    "n_folds", "candidates_per_iteration", "max_iterations_per_day", "min_iteration_gap_minutes", "random_seed"}
EDITABLE_FIELDS = {"name", "description", "refiner", "objective", *NUMERIC_RULES}
MAX_NAME = 120
MAX_DESCRIPTION = 5000
# Control characters (ANSI escapes, NUL, ...) and invisible format characters (bidi overrides,
# zero-width) in a name would rewrite terminals and logs or disguise one agent as another.
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def _bad_characters(text, *, allow=""):
    return sorted({f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in _REFUSED_CATEGORIES
                   and c not in allow})


def _check_numeric(name, value, errors):
    low, high = NUMERIC_RULES[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        errors[name] = "must be a number"
        return None
    if name in INTEGER_FIELDS:
        if isinstance(value, float) and not value.is_integer():
            errors[name] = "must be an integer"
            return None
        value = int(value)
    if not low <= value <= high:
        errors[name] = f"must be between {low} and {high}"
        return None
    return value


def _clean_settings(values, errors):
    clean = {}
    for name, value in values.items():
        if name in NUMERIC_RULES:
            checked = _check_numeric(name, value, errors)
            if checked is not None:
                clean[name] = checked
        elif name == "name":
            value = (value or "").strip() if isinstance(value, str) else value
            if not isinstance(value, str):
                errors["name"] = "must be a string"
            elif not value:
                errors["name"] = "must not be blank"
            elif len(value) > MAX_NAME:
                errors["name"] = f"must be at most {MAX_NAME} characters"
            elif bad := _bad_characters(value):
                errors["name"] = f"must not contain control or invisible characters (found {', '.join(bad)})"
            clean["name"] = value
        elif name == "refiner":
            if value not in RefinerChoice.values:
                errors["refiner"] = f"must be one of {', '.join(RefinerChoice.values)}"
            elif value == RefinerChoice.CLAUDE and not settings.ANTHROPIC_API_KEY:
                errors["refiner"] = ("claude needs ANTHROPIC_API_KEY, which this lab does not have: choose 'auto' "
                                     "(Claude once a key is set, Optuna until then) or 'optuna'")
            clean["refiner"] = value
        elif name == "objective":
            if value not in Objective.values:
                errors["objective"] = f"must be one of {', '.join(Objective.values)}"
            clean["objective"] = value
        elif name == "description":
            value = value or ""
            if not isinstance(value, str):
                errors["description"] = "must be a string"
            elif len(value) > MAX_DESCRIPTION:
                errors["description"] = f"must be at most {MAX_DESCRIPTION} characters (got {len(value)})"
            elif bad := _bad_characters(value, allow="\n\r\t"):
                errors["description"] = ("must not contain control or invisible characters other than newlines "
                                         f"and tabs (found {', '.join(bad)})")
            clean["description"] = value
        else:
            errors[name] = "cannot be set here"
    return clean


def validate_params(template_key, params):
    template = get_template(template_key)
    try:
        return template.validate(params or {})
    except ParamValidationError as exc:
        raise ValidationFailed({f"params.{k}" if k != "params" else k: v for k, v in exc.errors.items()})


def agent_create(*, owner, name, instrument, strategy_template, params=None, **settings_values):
    """Create an agent and its initial version. Raises ValidationFailed naming each bad field."""
    errors = {}
    if not isinstance(instrument, Instrument):
        found = Instrument.objects.filter(symbol=instrument).first()
        if found is None:
            errors["instrument"] = f"unknown instrument '{instrument}'"
        instrument = found
    try:
        template = get_template(strategy_template)
    except UnknownTemplateError as exc:
        errors["strategy_template"] = str(exc.args[0] if exc.args else exc)
        template = None
    clean = _clean_settings({"name": name, **settings_values}, errors)
    clean_params = None
    if template is not None:
        try:
            clean_params = template.validate(params or {})
        except ParamValidationError as exc:
            errors.update({f"params.{k}": v for k, v in exc.errors.items()})
    warnings = []
    if template is not None and instrument is not None and clean_params is not None:
        refusal, warnings = template.range_problems(instrument, clean_params)
        if refusal:
            errors["strategy_template"] = refusal
    if not errors and TradingAgent.objects.filter(owner=owner, name=clean["name"]).exists():
        errors["name"] = f"you already have an agent named '{clean['name']}'"
    if errors:
        raise ValidationFailed(errors)
    try:
        with transaction.atomic():
            agent = TradingAgent.objects.create(
                owner=owner, instrument=instrument, strategy_template=template.key, **clean
            )
            version = StrategyVersion.objects.create(
                agent=agent, number=1, params=clean_params, origin=VersionOrigin.INITIAL, created_by=owner
            )
            agent.current_version = version
            agent.save(update_fields=["current_version"])
            log_activity(
                agent,
                "agent_created",
                f"Agent created on {instrument.symbol} with {template.key} (v1)."
                + "".join(f" Warning: {w}." for w in warnings),
                actor=owner,
                details={"params": clean_params, **({"warnings": warnings} if warnings else {})},
            )
    except IntegrityError:
        raise ValidationFailed({"name": f"you already have an agent named '{clean['name']}'"})
    return agent


def agent_update(agent, *, actor, **values):
    """Edit an agent's settings (not its status or version: those have their own services)."""
    errors = {}
    if values.get("refiner") == agent.refiner:
        values.pop("refiner")  # unchanged: an existing choice is not re-judged (e.g. claude after its key went)
    for key in values:
        if key not in EDITABLE_FIELDS:
            errors[key] = "is read-only here" if hasattr(agent, key) else "unknown field"
    clean = _clean_settings({k: v for k, v in values.items() if k in EDITABLE_FIELDS}, errors)
    if "name" in clean and not errors:
        clash = TradingAgent.objects.filter(owner=agent.owner, name=clean["name"]).exclude(pk=agent.pk)
        if clash.exists():
            errors["name"] = f"you already have an agent named '{clean['name']}'"
    if errors:
        raise ValidationFailed(errors)
    changed = {k: v for k, v in clean.items() if getattr(agent, k) != v}
    if not changed:
        return agent
    with transaction.atomic():
        for key, value in changed.items():
            setattr(agent, key, value)
        agent.save(update_fields=[*changed, "updated_at"])
        log_activity(agent, "agent_updated", f"Settings changed: {', '.join(sorted(changed))}.", actor=actor,
                     details={"changed": changed})
    return agent


def agent_is_trading(agent):
    return agent.status in (AgentStatus.PAPER_TRADING, AgentStatus.LIVE_TRADING)


def agent_delete(agent, *, actor):
    """Delete an agent and everything it owns, also while one of its iterations runs: the worker
    then drops that iteration's outcome with one log line (agents.services.agent_lock)."""
    try:
        with transaction.atomic():
            lock_agent_row(agent.pk)  # waits for an iteration's outcome being written, if any
            unschedule_agent(agent.pk)
            agent.delete()
    except AgentGone:
        pass  # a concurrent request deleted it first: what was asked for is done
