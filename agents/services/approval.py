"""Automatic approval: judge an iteration's candidates against the agent's thresholds and
apply the best one that passes.

Thresholds (the seed's ``ApprovalThresholds`` plus ``max_drawdown``), all judged on the
candidate's *validation* metrics (the out-of-sample window), with their defaults:

=====================  ========  =================================================================
threshold              default   rule
=====================  ========  =================================================================
``min_win_rate``       0.4       ``win_rate >= min_win_rate``; a number in [0, 1]
``min_sharpe_ratio``   0.5       ``sharpe >= min_sharpe_ratio``; a number in [-10, 10]
``min_signals``        5         ``num_trades >= min_signals``; an integer in [0, 1000000]
``min_total_return``   0.0       ``total_return >= min_total_return``; a number >= -1
``require_improvement`` true     the candidate's validation score (the agent's objective) must be
                                 strictly greater than the current version's validation score,
                                 i.e. the iteration's ``score``; a boolean
``max_drawdown``       null      ``max_drawdown <= max_drawdown`` (positive fractions, 0.25 = -25%);
                                 a number in (0, 1], or null for no limit
=====================  ========  =================================================================

An agent's ``approval_thresholds`` JSON holds what its owner set; the thresholds in force are
the defaults overlaid with it (:func:`effective_thresholds`). Booleans are not numbers, NaN and
infinities are refused, unknown names are refused, and every violation is reported at once.

After each succeeded iteration (``learning._after_success_hooks``, inside the finishing
transaction) :func:`auto_approve_iteration` runs when ``auto_approve_enabled`` is set:

- every pending candidate of the iteration is judged; the per-criterion results
  (criterion, required, actual, passed) are stored on the refinement and logged;
- the best passing candidate (highest score) is approved and applied as a new version, the other
  passing ones are superseded, the failing ones rejected with the failed criteria in the reason;
- an agent in ``live_trading`` never changes automatically: candidates are judged and recorded
  but left pending for a person (paper trading likewise for now, see
  :func:`paper_trading_auto_apply_allowed`).

Bad data (an odd stored threshold, a missing metric) never makes approval raise: a bad stored
threshold falls back to its default and a missing metric fails its criterion. Any unexpected
error rolls back the approval's own writes (a savepoint), is logged, and leaves the iteration
succeeded with its candidates pending.
"""

import logging
import math

from django.db import transaction
from django.utils import timezone

from agents.models import (
    AgentStatus,
    IterationStatus,
    Refinement,
    RefinementStatus,
    TradingAgent,
)
from agents.services import decisions
from agents.services.activity import log_activity
from agents.services.errors import ValidationFailed

logger = logging.getLogger(__name__)

ACTOR_LABEL = "auto-approval"

DEFAULT_THRESHOLDS = {
    "min_win_rate": 0.4,
    "min_sharpe_ratio": 0.5,
    "min_signals": 5,
    "min_total_return": 0.0,
    "require_improvement": True,
    "max_drawdown": None,
}
# The seed's ApprovalThresholds: a full replace (PUT) must send each of these.
REQUIRED_KEYS = ("min_win_rate", "min_sharpe_ratio", "min_signals", "min_total_return", "require_improvement")
MAX_SIGNALS = 1_000_000

# Which validation metric each numeric threshold reads, and how it compares.
_METRIC_OF = {
    "min_win_rate": ("win_rate", ">="),
    "min_sharpe_ratio": ("sharpe", ">="),
    "min_signals": ("num_trades", ">="),
    "min_total_return": ("total_return", ">="),
    "max_drawdown": ("max_drawdown", "<="),
}

LIVE_SKIP_REASON = "auto-approval skipped: live trading agents change only by a person"
PAPER_SKIP_REASON = (
    "auto-approval skipped: paper trading agents change only by a person "
    "(until the operator allows automatic changes in paper trading)"
)


# --- thresholds --------------------------------------------------------------------------------
def _number(value):
    """``value`` as a finite float, or None when it is not a number (booleans are not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def _check(name, value):
    """(clean value, None) or (None, the rule broken)."""
    if name == "require_improvement":
        if not isinstance(value, bool):
            return None, "must be true or false"
        return value, None
    if name == "max_drawdown" and value is None:
        return None, None
    number = _number(value)
    if name == "min_win_rate":
        if number is None:
            return None, "must be a number between 0 and 1"
        if not 0.0 <= number <= 1.0:
            return None, "must be between 0 and 1"
        return number, None
    if name == "min_sharpe_ratio":
        if number is None:
            return None, "must be a number between -10 and 10"
        if not -10.0 <= number <= 10.0:
            return None, "must be between -10 and 10"
        return number, None
    if name == "min_signals":
        if number is None or not number.is_integer() or number < 0:
            return None, "must be a non-negative integer"
        if number > MAX_SIGNALS:
            return None, f"must be at most {MAX_SIGNALS}"
        return int(number), None
    if name == "min_total_return":
        if number is None:
            return None, "must be a number >= -1 (a fraction: -0.1 = -10%)"
        if number < -1.0:
            return None, "must be >= -1 (a return cannot be below -100%)"
        return number, None
    if name == "max_drawdown":
        if number is None or not 0.0 < number <= 1.0:
            return None, "must be greater than 0 and at most 1 (a fraction: 0.25 = 25%), or null for no limit"
        return number, None
    raise KeyError(name)


def validate_thresholds(data, *, partial=False):
    """Check a thresholds object; returns the defaults overlaid with the cleaned values.

    With ``partial=False`` (a full replace) each of the seed's five thresholds must be present
    (``max_drawdown`` may be omitted: no limit). Raises ValidationFailed naming every bad key.
    """
    if not isinstance(data, dict):
        raise ValidationFailed({"thresholds": "must be an object mapping threshold names to values"})
    errors, clean = {}, {}
    for name, value in data.items():
        if name not in DEFAULT_THRESHOLDS:
            errors[str(name)] = f"unknown threshold (known: {', '.join(DEFAULT_THRESHOLDS)})"
            continue
        checked, problem = _check(name, value)
        if problem:
            errors[name] = problem
        else:
            clean[name] = checked
    if not partial:
        for name in REQUIRED_KEYS:
            if name not in data:
                errors[name] = "required: a full replace sends every threshold (max_drawdown may be omitted)"
    if errors:
        raise ValidationFailed(errors)
    return {**DEFAULT_THRESHOLDS, **clean}


def effective_thresholds(agent):
    """The thresholds in force: defaults overlaid with the agent's own. Never raises: a stored
    value that breaks a rule (edited by hand) is ignored in favour of its default."""
    stored = agent.approval_thresholds if isinstance(agent.approval_thresholds, dict) else {}
    result = dict(DEFAULT_THRESHOLDS)
    for name, value in stored.items():
        if name not in DEFAULT_THRESHOLDS:
            continue
        checked, problem = _check(name, value)
        if problem:
            logger.warning("agent %s: ignoring stored threshold %s=%r (%s)", agent.pk, name, value, problem)
        else:
            result[name] = checked
    return result


# --- judging -----------------------------------------------------------------------------------
def judge(candidate_validation_metrics, candidate_score, thresholds, current_score):
    """One result per threshold in force, in a fixed order.

    ``{"criterion", "required", "actual", "passed"}``; a missing or non-finite metric is
    ``actual: None`` and fails. ``require_improvement`` compares the candidate's score with the
    current version's validation score, strictly.
    """
    metrics = candidate_validation_metrics if isinstance(candidate_validation_metrics, dict) else {}
    results = []
    for criterion, (metric, op) in _METRIC_OF.items():
        required = thresholds.get(criterion)
        if required is None:
            continue  # max_drawdown null: no limit
        actual = _number(metrics.get(metric))
        if actual is not None and criterion == "min_signals":
            actual = int(actual)
        passed = actual is not None and (actual >= required if op == ">=" else actual <= required)
        results.append({"criterion": criterion, "required": required, "actual": actual, "passed": passed})
    if thresholds.get("require_improvement"):
        score, current = _number(candidate_score), _number(current_score)
        results.append({
            "criterion": "require_improvement",
            "required": f"> current score {_fmt(current)}" if current is not None else "> current score (unknown)",
            "actual": score,
            "passed": score is not None and current is not None and score > current,
        })
    return results


def _fmt(value):
    if value is None:
        return "n/a"
    if isinstance(value, bool | int):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return f"{value:.4g}"


def _fmt_threshold(value):
    return "no limit" if value is None else _fmt(value)


def _describe(result):
    criterion, actual, required = result["criterion"], result["actual"], result["required"]
    if criterion == "require_improvement":
        return f"require_improvement: score {_fmt(actual)} {'' if result['passed'] else 'not '}{required}"
    op = "<=" if criterion == "max_drawdown" else ">="
    if actual is None:
        return f"{criterion}: metric missing (needs {op} {_fmt(required)})"
    if not result["passed"]:
        op = {">=": "<", "<=": ">"}[op]
    return f"{criterion} {_fmt(actual)} {op} {_fmt(required)}"


def _failed(results):
    return [r for r in results if not r["passed"]]


# --- where automatic application stops ------------------------------------------------------------
def paper_trading_auto_apply_allowed(agent):
    """May a paper trading agent have a refinement applied automatically (a re-pin of the traded
    version)? Only when its owner turned ``auto_apply_in_paper`` on; never for any other status
    (a live trading agent's version changes only by a person)."""
    return agent.status == AgentStatus.PAPER_TRADING and bool(agent.auto_apply_in_paper)


def automatic_application_refused(agent):
    """Why this agent must not change by itself now, or None when it may."""
    if agent.status == AgentStatus.LIVE_TRADING:
        return LIVE_SKIP_REASON
    if agent.status == AgentStatus.PAPER_TRADING and not paper_trading_auto_apply_allowed(agent):
        return PAPER_SKIP_REASON
    if agent.status not in (AgentStatus.LEARNING, AgentStatus.PAPER_TRADING):
        return f"auto-approval skipped: an agent in status '{agent.status}' changes only by a person"
    return None


# --- the run after an iteration -------------------------------------------------------------------
def _summary(**values):
    return {"enabled": True, "skipped": None, "approved": None, "version": None, "judged": 0, "passed": 0,
            "superseded": 0, "rejected": 0, **values}


def auto_approve_iteration(iteration):
    """Judge the iteration's pending candidates and apply the best passing one. Never raises
    for bad data; returns a summary (approved refinement id or None, version number, counts)."""
    agent = TradingAgent.objects.filter(pk=iteration.agent_id).first()
    if agent is None or not agent.auto_approve_enabled:
        return _summary(enabled=False)
    if iteration.status != IterationStatus.SUCCEEDED:
        return _summary(skipped=f"iteration #{iteration.number} did not succeed")
    try:
        with transaction.atomic():
            return _run(agent, iteration)
    except Exception as exc:
        # Approval must not fail the iteration: its own writes are rolled back (savepoint) and
        # the candidates stay pending for a person.
        logger.exception("auto-approval of iteration %s of agent %s failed", iteration.number, agent.pk)
        message = f"auto-approval failed: {type(exc).__name__}: {exc}"
        log_activity(agent, "auto_approval_failed", message, actor_label=ACTOR_LABEL,
                     details={"iteration": iteration.number, "error_type": type(exc).__name__})
        return _summary(skipped=message)


def _run(agent, iteration):
    thresholds = effective_thresholds(agent)
    current_score = iteration.score
    candidates = list(
        Refinement.objects.filter(iteration=iteration, status=RefinementStatus.PENDING).order_by("id")
    )
    judged = []
    for refinement in candidates:
        refinement.agent = agent  # the decisions' log lines need it; saves a query each
        results = judge(refinement.validation_metrics, refinement.score, thresholds, current_score)
        judged.append((refinement, results))
    passing = sorted(
        (pair for pair in judged if not _failed(pair[1])),
        key=lambda pair: (-(pair[0].score if _number(pair[0].score) is not None else -math.inf), pair[0].pk),
    )
    base_details = {"iteration": iteration.number, "thresholds": thresholds, "current_score": current_score}

    refusal = automatic_application_refused(agent)
    if refusal is None and agent.current_version_id != iteration.version_id:
        refusal = (
            f"auto-approval skipped: the current version changed since iteration #{iteration.number} "
            "evaluated it, so its candidates were judged against an outdated baseline"
        )
    if refusal is None:
        waiting = list(
            Refinement.objects.filter(agent=agent, status=RefinementStatus.APPROVED)
            .exclude(iteration=iteration).values_list("pk", flat=True)
        )
        if waiting:
            # Applying takes the best of *all* approved refinements; a person's approval waiting
            # to be applied is theirs to finish, not ours to sweep up or supersede.
            refusal = (
                f"auto-approval skipped: refinement(s) {', '.join(map(str, waiting))} approved by a person "
                "await applying; apply or reject them first"
            )
    if refusal is not None:
        return _record_without_applying(agent, judged, passing, refusal, base_details)

    summary = _summary(judged=len(judged), passed=len(passing))
    now = timezone.now()
    if passing:
        best, best_results = passing[0]
        reason = (
            f"auto-approved: passed all {len(best_results)} criteria ("
            + "; ".join(_describe(r) for r in best_results)
            + f"); best of {len(passing)} passing candidate(s) with score {_fmt(best.score)}"
        )
        decisions.refinement_approve(best, actor=None, reason=reason, automatic=True, criteria_results=best_results)
        version = decisions.refinements_apply(agent, actor=None, automatic=True, reason=reason, refinement=best)
        summary.update(approved=best.pk, version=version.number)
        for refinement, results in passing[1:]:
            _supersede(agent, refinement, results, best, now)
            summary["superseded"] += 1
    for refinement, results in judged:
        failed = _failed(results)
        if failed:
            reason = "auto-rejected: failed " + "; ".join(_describe(r) for r in failed)
            decisions.refinement_reject(
                refinement, actor=None, reason=reason, automatic=True, criteria_results=results
            )
            summary["rejected"] += 1
    if summary["approved"]:
        message = (
            f"Auto-approval: refinement {summary['approved']} applied as v{summary['version']}; "
            f"{summary['superseded']} superseded, {summary['rejected']} rejected."
        )
    elif judged:
        message = f"Auto-approval: none of {len(judged)} candidates passed the thresholds; nothing applied."
    else:
        message = "Auto-approval: no pending candidates; nothing applied."
    log_activity(agent, "auto_approval", message, actor_label=ACTOR_LABEL, details={**base_details, **summary})
    return summary


def _supersede(agent, refinement, results, best, now):
    reason = (
        f"auto-approval: passed all {len(results)} criteria but superseded by refinement {best.pk} "
        f"(score {_fmt(refinement.score)} vs {_fmt(best.score)}): two parameter sets cannot be merged"
    )
    Refinement.objects.filter(pk=refinement.pk, status=RefinementStatus.PENDING).update(
        status=RefinementStatus.SUPERSEDED, decided_by=None, decided_automatically=True,
        decision_reason=reason, criteria_results=results, decided_at=now,
    )
    log_activity(
        agent, "refinement_superseded", f"Refinement {refinement.pk} superseded: {reason}.",
        actor_label=ACTOR_LABEL,
        details={"refinement": refinement.pk, "reason": reason, "criteria": results, "superseded_by": best.pk},
    )


def _record_without_applying(agent, judged, passing, refusal, base_details):
    """Store the judgement on each candidate, leave them pending, and say why."""
    best_pk = passing[0][0].pk if passing else None
    for refinement, results in judged:
        failed = _failed(results)
        verdict = (
            "passed all criteria" + (" (best candidate)" if refinement.pk == best_pk else "")
            if not failed else "failed " + "; ".join(_describe(r) for r in failed)
        )
        Refinement.objects.filter(pk=refinement.pk, status=RefinementStatus.PENDING).update(
            criteria_results=results, decision_reason=f"judged by auto-approval: {verdict}; left pending ({refusal})"
        )
    log_activity(
        agent, "auto_approval_skipped", refusal, actor_label=ACTOR_LABEL,
        details={
            **base_details,
            "reason": refusal,
            "best_passing": best_pk,
            "candidates": [
                {"refinement": r.pk, "score": r.score, "passed": not _failed(res), "criteria": res}
                for r, res in judged
            ],
        },
    )
    return _summary(skipped=refusal, judged=len(judged), passed=len(passing))


# --- settings an owner changes -------------------------------------------------------------------
def approval_settings(agent):
    """What the API and console show: the switch, the thresholds in force and the defaults."""
    refusal = automatic_application_refused(agent)
    return {
        "auto_approve_enabled": agent.auto_approve_enabled,
        "thresholds": effective_thresholds(agent),
        "defaults": dict(DEFAULT_THRESHOLDS),
        "applies_automatically": agent.auto_approve_enabled and refusal is None,
        "note": refusal or "",
    }


def _set_enabled(agent, enabled, actor):
    if agent.auto_approve_enabled == enabled:
        return agent
    with transaction.atomic():
        TradingAgent.objects.filter(pk=agent.pk).update(auto_approve_enabled=enabled, updated_at=timezone.now())
        agent.auto_approve_enabled = enabled
        refusal = automatic_application_refused(agent)
        word = "enabled" if enabled else "disabled"
        message = f"Auto-approval {word}."
        if enabled and refusal:
            message += f" Candidates will be judged but not applied: {refusal.removeprefix('auto-approval skipped: ')}."
        log_activity(agent, f"auto_approve_{word}", message, actor=actor,
                     details={"thresholds": effective_thresholds(agent)})
    return agent


def auto_approve_enable(agent, *, actor):
    return _set_enabled(agent, True, actor)


def auto_approve_disable(agent, *, actor):
    return _set_enabled(agent, False, actor)


def thresholds_set(agent, data, *, actor, partial=False):
    """Replace the agent's thresholds (or, with ``partial``, change only those sent).

    Validated first: on any bad input nothing changes and ValidationFailed names every key.
    """
    before = effective_thresholds(agent)
    if partial:
        validate_thresholds(data, partial=True)  # errors name only the keys sent
        clean = validate_thresholds({**before, **data})
    else:
        clean = validate_thresholds(data)
    changed = {k: {"from": before[k], "to": v} for k, v in clean.items() if before.get(k) != v}
    if not changed and agent.approval_thresholds == clean:
        return agent
    with transaction.atomic():
        TradingAgent.objects.filter(pk=agent.pk).update(approval_thresholds=clean, updated_at=timezone.now())
        agent.approval_thresholds = clean
        shown = ", ".join(
            f"{k} {_fmt_threshold(c['from'])} -> {_fmt_threshold(c['to'])}" for k, c in changed.items()
        )
        log_activity(
            agent, "approval_thresholds_set",
            f"Approval thresholds set: {shown or 'defaults pinned, values unchanged'}.", actor=actor,
            details={"thresholds": clean, "changed": changed},
        )
    return agent
