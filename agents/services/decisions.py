"""Decisions on refinements and versions: approve, reject, apply, roll back.

Applying: when several refinements are approved, the one with the best validation score
becomes the new version and the other approved ones are marked superseded (two parameter
sets cannot be meaningfully merged). Versions are never edited: apply and rollback add one.
"""

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from agents import signals
from agents.models import (
    Refinement,
    RefinementStatus,
    StrategyVersion,
    TradingAgent,
    VersionOrigin,
)
from agents.services.activity import actor_label_for, log_activity
from config.observability import metrics as lab_metrics
from core.errors import Conflict, ValidationFailed


def _fmt(value):
    return "-" if value is None else f"{value:.4f}"


def _lock_agent(agent):
    # Serialises decisions on one agent (a no-op lock on SQLite, which locks the database).
    return TradingAgent.objects.select_for_update().get(pk=agent.pk)


def refinement_approve(refinement, *, actor, reason="", automatic=False, criteria_results=None):
    if refinement.status != RefinementStatus.PENDING:
        raise Conflict({"status": f"only a pending refinement can be approved (this one is {refinement.status})"})
    with transaction.atomic():
        updated = Refinement.objects.filter(pk=refinement.pk, status=RefinementStatus.PENDING).update(
            status=RefinementStatus.APPROVED,
            decided_by=actor if getattr(actor, "pk", None) else None,
            decided_automatically=automatic,
            decision_reason=reason,
            criteria_results=criteria_results if criteria_results is not None else refinement.criteria_results,
            decided_at=timezone.now(),
        )
        if not updated:
            raise Conflict({"status": "the refinement was decided by someone else meanwhile"})
        refinement.refresh_from_db()
        log_activity(
            refinement.agent,
            "refinement_approved",
            f"Refinement {refinement.pk} approved (score {_fmt(refinement.score)}).",
            actor=actor,
            actor_label=None if not automatic else "auto-approval",
            details={"refinement": refinement.pk, "reason": reason, "criteria": refinement.criteria_results},
        )
        lab_metrics.refinement_decided("approved", automatic=automatic)
    return refinement


def refinement_reject(refinement, *, actor, reason="", automatic=False, criteria_results=None):
    if refinement.status not in (RefinementStatus.PENDING, RefinementStatus.APPROVED):
        raise Conflict({"status": f"a {refinement.status} refinement cannot be rejected"})
    with transaction.atomic():
        refinement.status = RefinementStatus.REJECTED
        refinement.decided_by = actor if getattr(actor, "pk", None) else None
        refinement.decided_automatically = automatic
        refinement.decision_reason = reason
        if criteria_results is not None:
            refinement.criteria_results = criteria_results
        refinement.decided_at = timezone.now()
        refinement.save(
            update_fields=["status", "decided_by", "decided_automatically", "decision_reason",
                           "criteria_results", "decided_at"]
        )
        log_activity(
            refinement.agent,
            "refinement_rejected",
            f"Refinement {refinement.pk} rejected{': ' + reason if reason else ''}.",
            actor=actor,
            actor_label=None if not automatic else "auto-approval",
            details={"refinement": refinement.pk, "reason": reason, "criteria": refinement.criteria_results},
        )
        lab_metrics.refinement_decided("rejected", automatic=automatic)
    return refinement


def _new_version(agent, *, params, origin, parent, actor, metrics=None, note=""):
    number = (StrategyVersion.objects.filter(agent=agent).aggregate(m=Max("number"))["m"] or 0) + 1
    version = StrategyVersion.objects.create(
        agent=agent,
        number=number,
        params=params,
        origin=origin,
        parent=parent,
        metrics=metrics or {},
        note=note,
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    agent.current_version = version
    agent.save(update_fields=["current_version", "updated_at"])
    return version


def refinements_apply(agent, *, actor, automatic=False, reason="", refinement=None):
    """Apply an approved refinement as a new current version. Returns the version.

    Without `refinement`, the best approved one is applied and the other approved ones are
    superseded; with it, exactly that one is applied and other approvals are left alone.
    """
    with transaction.atomic():
        agent = _lock_agent(agent)
        approved = Refinement.objects.filter(agent=agent, status=RefinementStatus.APPROVED).order_by("-score", "id")
        if refinement is not None:
            approved = approved.filter(pk=refinement.pk)
        approved = list(approved)
        if not approved:
            raise Conflict({"refinements": "there is no approved refinement to apply"})
        best, others = approved[0], approved[1:]
        parent = agent.current_version
        version = _new_version(
            agent,
            params=best.proposed_params,
            origin=VersionOrigin.REFINEMENT,
            parent=parent,
            actor=actor,
            metrics={"train": best.train_metrics, "validation": best.validation_metrics},
            note=f"from refinement {best.pk} of iteration {best.iteration_id}",
        )
        best.status = RefinementStatus.APPLIED
        best.produced_version = version
        best.save(update_fields=["status", "produced_version"])
        if others:
            Refinement.objects.filter(pk__in=[r.pk for r in others]).update(
                status=RefinementStatus.SUPERSEDED,
                decision_reason=f"superseded by refinement {best.pk}",
                decided_at=timezone.now(),
                decided_automatically=automatic,
            )
        label = "auto-approval" if automatic else actor_label_for(actor)
        log_activity(
            agent,
            "refinement_applied",
            f"v{version.number} made current from refinement {best.pk} (was v{parent.number if parent else '-'}).",
            actor=actor,
            actor_label=label,
            details={
                "version": version.number,
                "refinement": best.pk,
                "params": best.proposed_params,
                "superseded": [r.pk for r in others],
                "reason": reason,
            },
        )
        lab_metrics.refinement_decided("applied", automatic=automatic)
        lab_metrics.refinement_decided("superseded", automatic=automatic, count=len(others))
        agent_id, version_id, refinement_id = agent.pk, version.pk, best.pk
        transaction.on_commit(
            lambda: signals.refinement_applied.send(
                sender=TradingAgent, agent_id=agent_id, version_id=version_id,
                refinement_id=refinement_id, automatic=automatic,
            )
        )
    return version


def version_rollback(agent, version, *, actor, reason=""):
    """Make an earlier version's params current again, as a new version (origin rollback)."""
    if version.agent_id != agent.pk:
        raise ValidationFailed({"version": "belongs to another agent"})
    with transaction.atomic():
        agent = _lock_agent(agent)
        if agent.current_version_id == version.pk:
            raise Conflict({"version": f"v{version.number} is already the current version"})
        previous = agent.current_version
        new = _new_version(
            agent,
            params=version.params,
            origin=VersionOrigin.ROLLBACK,
            parent=previous,
            actor=actor,
            metrics=version.metrics,
            note=f"rollback to v{version.number}" + (f": {reason}" if reason else ""),
        )
        log_activity(
            agent,
            "version_rolled_back",
            f"Rolled back to v{version.number}'s params as v{new.number}.",
            actor=actor,
            details={"from": previous.number if previous else None, "to": version.number, "new": new.number,
                     "reason": reason},
        )
        lab_metrics.refinement_decided("rolled_back")
        agent_id, version_id = agent.pk, new.pk
        transaction.on_commit(
            lambda: signals.refinement_applied.send(
                sender=TradingAgent, agent_id=agent_id, version_id=version_id, refinement_id=None, automatic=False
            )
        )
    return new
