"""Graduation criteria: lab-wide defaults (settings.LAB_GRADUATION_CRITERIA), per-agent overrides.

=============================  ==========  ===============================================================
criterion                      default     rule and meaning
=============================  ==========  ===============================================================
``min_iterations``             10          integer >= 1: succeeded iterations in the agent's lifetime
``min_win_rate``               0.45        number in [0, 1]: validation ``win_rate >=`` it
``min_sharpe_ratio``           0.5         number in [-10, 10]: validation (or paper) ``sharpe >=`` it
``min_total_return``           0.0         number >= -1: validation (or paper) ``total_return >=`` it
``min_signals``                5           integer >= 0: validation ``num_trades >=`` it
``consistency_window``         3           integer in [1, 50]: the last this-many succeeded iterations
                                           must *each* pass the metric criteria
``max_drawdown``               0.25        number in (0, 1]: validation (or paper) ``max_drawdown <=`` it;
                                           also the automatic demotion line of a trading agent
``min_probabilistic_sharpe``   null        number in [0, 1] or null (off): validation ``psr >=`` it
=============================  ==========  ===============================================================

An agent's ``graduation_criteria`` JSON holds its overrides only; the criteria in force are the
defaults overlaid with them (:func:`effective_criteria`). Booleans are not numbers, NaN and
infinities are refused, unknown names are refused, every violation is reported at once, and
nothing changes on bad input. Bad lab defaults stop the start-up (:func:`check_defaults`).
"""

import logging
import math

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from agents.models import TradingAgent
from agents.services.activity import log_activity
from agents.services.errors import ValidationFailed

logger = logging.getLogger(__name__)

CRITERIA = (
    "min_iterations",
    "min_win_rate",
    "min_sharpe_ratio",
    "min_total_return",
    "min_signals",
    "consistency_window",
    "max_drawdown",
    "min_probabilistic_sharpe",
)
NULLABLE = {"min_probabilistic_sharpe"}
MAX_SIGNALS = 1_000_000
MAX_ITERATIONS = 100_000
# (kind, low, low inclusive, high, high inclusive, how to say it)
_RULES = {
    "min_iterations": ("int", 1, True, MAX_ITERATIONS, True, f"an integer between 1 and {MAX_ITERATIONS}"),
    "min_win_rate": ("float", 0.0, True, 1.0, True, "a number between 0 and 1"),
    "min_sharpe_ratio": ("float", -10.0, True, 10.0, True, "a number between -10 and 10"),
    "min_total_return": ("float", -1.0, True, math.inf, False, "a number >= -1 (a fraction: -0.1 = -10%)"),
    "min_signals": ("int", 0, True, MAX_SIGNALS, True, f"an integer between 0 and {MAX_SIGNALS}"),
    "consistency_window": ("int", 1, True, 50, True, "an integer between 1 and 50"),
    "max_drawdown": ("float", 0.0, False, 1.0, True, "a number greater than 0 and at most 1 (0.25 = 25%)"),
    "min_probabilistic_sharpe": ("float", 0.0, True, 1.0, True, "a number between 0 and 1, or null (off)"),
}


def check(name, value):
    """(clean value, None) or (None, the rule broken)."""
    kind, low, low_ok, high, high_ok, words = _RULES[name]
    if value is None:
        return (None, None) if name in NULLABLE else (None, f"must be {words}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"must be {words}"
    try:
        number = float(value)
    except OverflowError:
        return None, f"must be {words}"
    if not math.isfinite(number):
        return None, f"must be {words}"
    if kind == "int":
        if not number.is_integer():
            return None, f"must be {words}"
        number = int(number)
    if number < low or (number == low and not low_ok) or number > high or (number == high and not high_ok):
        return None, f"must be {words}"
    return number, None


def defaults():
    return {name: settings.LAB_GRADUATION_CRITERIA.get(name) for name in CRITERIA}


def check_defaults():
    """Raise ImproperlyConfigured naming every bad lab default (called at start-up)."""
    configured = settings.LAB_GRADUATION_CRITERIA
    problems = [f"{name}: unknown criterion" for name in configured if name not in CRITERIA]
    for name in CRITERIA:
        if name not in configured and name not in NULLABLE:
            problems.append(f"{name}: missing")
            continue
        _clean, problem = check(name, configured.get(name))
        if problem:
            problems.append(f"{name}={configured.get(name)!r}: {problem}")
    if problems:
        raise ImproperlyConfigured("LAB_GRADUATION_CRITERIA (LAB_GRAD_* variables): " + "; ".join(problems))


def validate_overrides(data):
    """The cleaned overrides object, or ValidationFailed naming every bad key."""
    if not isinstance(data, dict):
        raise ValidationFailed({"criteria": "must be an object mapping criterion names to values"})
    errors, clean = {}, {}
    for name, value in data.items():
        if name not in _RULES:
            errors[str(name)] = f"unknown criterion (known: {', '.join(CRITERIA)})"
            continue
        checked, problem = check(name, value)
        if problem:
            errors[name] = problem
        else:
            clean[name] = checked
    if errors:
        raise ValidationFailed(errors)
    return clean


def effective_criteria(agent):
    """Defaults overlaid with the agent's overrides. Never raises: a stored value that breaks a rule
    (edited by hand) is ignored in favour of the default."""
    result = defaults()
    stored = agent.graduation_criteria if isinstance(agent.graduation_criteria, dict) else {}
    for name, value in stored.items():
        if name not in _RULES:
            continue
        checked, problem = check(name, value)
        if problem:
            logger.warning("agent %s: ignoring stored graduation criterion %s=%r (%s)", agent.pk, name, value, problem)
        else:
            result[name] = checked
    return result


def criteria_settings(agent):
    stored = agent.graduation_criteria if isinstance(agent.graduation_criteria, dict) else {}
    return {"criteria": effective_criteria(agent), "overrides": dict(stored), "defaults": defaults()}


def criteria_set(agent, data, *, actor):
    """Replace the agent's overrides (an empty object returns it to the lab defaults)."""
    clean = validate_overrides(data)
    with transaction.atomic():
        agent = TradingAgent.objects.select_for_update().get(pk=agent.pk)
        before = agent.graduation_criteria
        agent.graduation_criteria = clean
        agent.save(update_fields=["graduation_criteria", "updated_at"])
        log_activity(
            agent, "graduation_criteria_set",
            "Graduation criteria overrides set" + (f": {clean}" if clean else " (lab defaults)") + ".",
            actor=actor, details={"before": before, "after": clean},
        )
    return agent
