"""Automatic approval: apply the best candidate of an iteration that passes the approval gate.

The gate's rules and evidence are declared in :mod:`agents.services.approval_gate`; the learning
service judges every candidate while it has the backtests in hand and reads the sealed test
window only for the best candidate that passes every other rule. :func:`iteration_auto_approve`
runs in the finishing transaction and decides on the stored rows:

- the candidate whose rows all pass, sealed row included, is approved and applied; the others
  that passed the selection rules are superseded (one candidate per iteration earns the look at
  the sealed window); the rest are rejected, with the failed rules or, when no candidate passed
  the sealed window, "not examined on the sealed window";
- nothing is applied, and the candidates stay pending with their judgement, when the agent may
  not change by itself (live trading; paper trading without ``auto_apply_in_paper``), when the
  current version changed since the iteration evaluated it, or when a person's approval waits
  to be applied.

Bad data never makes approval raise: a bad stored threshold falls back to its default, a missing
metric fails its rule, and an unexpected error rolls back approval's own writes (a savepoint)
and leaves the iteration succeeded with its candidates pending. README "Autonomy" has the API.
"""

import logging

from django.db import transaction
from django.utils import timezone

from agents.evaluation import rules as R
from agents.models import (
    AgentStatus,
    IterationStatus,
    Refinement,
    RefinementStatus,
    TradingAgent,
)
from agents.services import decisions
from agents.services.activity import activity_log
from agents.services.approval_gate import (
    APPROVAL_RULES,
    DEFAULT_THRESHOLDS,
    REQUIRED_KEYS,
    describe_rows,
    has_sealed,
)

logger = logging.getLogger(__name__)

ACTOR_LABEL = "auto-approval"

LIVE_SKIP_REASON = "auto-approval skipped: live trading agents change only by a person"
PAPER_SKIP_REASON = (
    "auto-approval skipped: paper trading agents change only by a person "
    "(until the operator allows automatic changes in paper trading)"
)


# --- thresholds --------------------------------------------------------------------------------
def validate_thresholds(data, *, partial=False):
    """Check a thresholds object; returns the defaults overlaid with the cleaned values.

    With ``partial=False`` (a complete object, as the console form sends) each of the five core
    thresholds (REQUIRED_KEYS) must be present, the others default. Raises ValidationFailed naming
    every bad key.
    """
    return R.validate(APPROVAL_RULES, data, required=() if partial else REQUIRED_KEYS, label="thresholds")


def effective_thresholds(agent):
    """The thresholds in force: defaults overlaid with the agent's own. Never raises."""
    return R.in_force(APPROVAL_RULES, agent.approval_thresholds, owner=f"agent {agent.pk} approval")


def _failed(results):
    return R.failed(results or [])


_fmt = R.fmt


def _fmt_threshold(value):
    return "no limit" if value is None else _fmt(value)


# --- where automatic application stops ------------------------------------------------------------
def paper_trading_auto_apply_allowed(agent):
    """May a paper trading agent have a refinement applied automatically (a new current version,
    which graduation shadows as the challenger until it beats the traded one)? Only when its owner
    turned ``auto_apply_in_paper`` on; never for any other status
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


def iteration_auto_approve(iteration):
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
        activity_log(agent, event="auto_approval_failed", message=message, actor_label=ACTOR_LABEL,
                     details={"iteration": iteration.number, "error_type": type(exc).__name__})
        return _summary(skipped=message)


def _passes_gate(refinement):
    rows = refinement.criteria_results or []
    return bool(rows) and has_sealed(rows) and not _failed(rows)


def _run(agent, iteration):
    thresholds = effective_thresholds(agent)
    candidates = list(
        Refinement.objects.filter(iteration=iteration, status=RefinementStatus.PENDING).order_by("id")
    )
    judged = []
    for refinement in candidates:
        refinement.agent = agent  # the decisions' log lines need it; saves a query each
        judged.append((refinement, refinement.criteria_results or []))
    base_details = {"iteration": iteration.number, "thresholds": thresholds,
                    "current_selection_score": iteration.selection_score, "current_test_score": iteration.score}
    passing = [(r, rows) for r, rows in judged if rows and not _failed(rows)]

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
    best = next((r for r, _rows in judged if _passes_gate(r)), None)
    if best is not None:
        rows = best.criteria_results
        reason = (
            f"auto-approved: passed all {len(rows)} rules ({describe_rows(rows)}); "
            f"selection score {_fmt(best.score)}, sealed test {_fmt(best.test_score)}"
        )
        decisions.refinement_approve(best, actor=None, reason=reason, automatic=True, criteria_results=rows)
        version = decisions.refinements_apply(agent, actor=None, automatic=True, reason=reason, refinement=best)
        summary.update(approved=best.pk, version=version.number)
    for refinement, rows in judged:
        if best is not None and refinement.pk == best.pk:
            continue
        failed = _failed(rows)
        if not failed and best is not None:
            _supersede(refinement, rows, best)
            summary["superseded"] += 1
            continue
        reason = ("auto-rejected: failed " + describe_rows(failed)) if failed else (
            "auto-rejected: not examined on the sealed window (no candidate of this iteration passed it)")
        decisions.refinement_reject(refinement, actor=None, reason=reason, automatic=True, criteria_results=rows)
        summary["rejected"] += 1
    if summary["approved"]:
        message = (
            f"Auto-approval: refinement {summary['approved']} applied as v{summary['version']}; "
            f"{summary['superseded']} superseded, {summary['rejected']} rejected."
        )
    elif judged:
        message = f"Auto-approval: none of {len(judged)} candidates passed the gate; nothing applied."
    else:
        message = "Auto-approval: no pending candidates; nothing applied."
    activity_log(agent, event="auto_approval", message=message, actor_label=ACTOR_LABEL,
                 details={**base_details, **summary})
    return summary


def _supersede(refinement, results, best):
    reason = (
        f"auto-approval: passed the selection rules but superseded by refinement {best.pk} "
        f"(selection score {_fmt(refinement.score)} vs {_fmt(best.score)}): two parameter sets cannot be merged"
    )
    decisions.refinement_supersede(refinement, by=best, reason=reason, criteria_results=results)


def _record_without_applying(agent, judged, passing, refusal, base_details):
    """Store the judgement on each candidate, leave them pending, and say why."""
    best_pk = passing[0][0].pk if passing else None
    for refinement, results in judged:
        failed = _failed(results)
        verdict = (
            "passed the selection rules" + (" (best candidate)" if refinement.pk == best_pk else "")
            if not failed else "failed " + describe_rows(failed)
        )
        Refinement.objects.filter(pk=refinement.pk, status=RefinementStatus.PENDING).update(
            criteria_results=results, decision_reason=f"judged by auto-approval: {verdict}; left pending ({refusal})"
        )
    activity_log(
        agent, event="auto_approval_skipped", message=refusal, actor_label=ACTOR_LABEL,
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
        activity_log(agent, event=f"auto_approve_{word}", message=message, actor=actor,
                     details={"thresholds": effective_thresholds(agent)})
    return agent


def auto_approve_enable(agent, *, actor):
    return _set_enabled(agent, True, actor)


def auto_approve_disable(agent, *, actor):
    return _set_enabled(agent, False, actor)


def thresholds_set(agent, data, *, actor, partial=False):
    """Replace the agent's thresholds (or, with ``partial``, change only those sent).

    The rule, the same as graduation criteria's: a replace (PUT) takes the values sent and puts
    every threshold not sent back to its default; a partial change (PATCH) keeps them.

    Validated first: on any bad input nothing changes and ValidationFailed names every key.
    """
    before = effective_thresholds(agent)
    if partial:
        validate_thresholds(data, partial=True)  # errors name only the keys sent
        clean = validate_thresholds({**before, **data})
    else:
        clean = validate_thresholds(data, partial=True)  # not sent: back to the default
    changed = {k: {"from": before[k], "to": v} for k, v in clean.items() if before.get(k) != v}
    if not changed and agent.approval_thresholds == clean:
        return agent
    with transaction.atomic():
        TradingAgent.objects.filter(pk=agent.pk).update(approval_thresholds=clean, updated_at=timezone.now())
        agent.approval_thresholds = clean
        shown = ", ".join(
            f"{k} {_fmt_threshold(c['from'])} -> {_fmt_threshold(c['to'])}" for k, c in changed.items()
        )
        activity_log(
            agent, event="approval_thresholds_set",
            message=f"Approval thresholds set: {shown or 'defaults pinned, values unchanged'}.", actor=actor,
            details={"thresholds": clean, "changed": changed},
        )
    return agent
