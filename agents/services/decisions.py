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
from agents.services.activity import activity_log, actor_label_for
from config.observability import metrics as lab_metrics
from core.errors import Conflict, ValidationFailed


def _fmt(value):
    return "-" if value is None else f"{value:.4f}"


def _lock_agent(agent):
    # Serialises decisions on one agent (a no-op lock on SQLite, which locks the database).
    return TradingAgent.objects.select_for_update().get(pk=agent.pk)


def _record_decision(refinement, status, *, allowed, actor, automatic, reason, criteria_results, event, message,
                     details=None):
    """The one write of a decision on a refinement: a conditional update from the ``allowed``
    statuses (a concurrent decision makes it a Conflict, never an overwrite), its activity line
    and its metric. Runs inside the caller's transaction."""
    updated = Refinement.objects.filter(pk=refinement.pk, status__in=allowed).update(
        status=status,
        decided_by=actor if getattr(actor, "pk", None) else None,
        decided_automatically=automatic,
        decision_reason=reason,
        criteria_results=criteria_results if criteria_results is not None else refinement.criteria_results,
        decided_at=timezone.now(),
    )
    if not updated:
        raise Conflict({"status": "the refinement was decided by someone else meanwhile"})
    agent = refinement.agent  # kept across the refresh, which would drop it and cost a query
    refinement.refresh_from_db()  # also picks up what the caller wrote before (a sealed reading)
    refinement.agent = agent
    activity_log(
        agent,
        event=event,
        message=message,
        actor=actor,
        actor_label="auto-approval" if automatic else None,
        details={"refinement": refinement.pk, "reason": reason, "criteria": refinement.criteria_results,
                 **(details or {})},
    )
    lab_metrics.refinement_decided(status, automatic=automatic)
    return refinement


def refinement_approve(refinement, *, actor, reason="", automatic=False, criteria_results=None):
    if refinement.status != RefinementStatus.PENDING:
        raise Conflict({"status": f"only a pending refinement can be approved (this one is {refinement.status})"})
    with transaction.atomic():
        return _record_decision(
            refinement, RefinementStatus.APPROVED, allowed=[RefinementStatus.PENDING], actor=actor,
            automatic=automatic, reason=reason, criteria_results=criteria_results, event="refinement_approved",
            message=f"Refinement {refinement.pk} approved (score {_fmt(refinement.score)}).",
        )


def refinement_reject(refinement, *, actor, reason="", automatic=False, criteria_results=None):
    if refinement.status not in (RefinementStatus.PENDING, RefinementStatus.APPROVED):
        raise Conflict({"status": f"a {refinement.status} refinement cannot be rejected"})
    with transaction.atomic():
        return _record_decision(
            refinement, RefinementStatus.REJECTED, allowed=[RefinementStatus.PENDING, RefinementStatus.APPROVED],
            actor=actor, automatic=automatic, reason=reason, criteria_results=criteria_results,
            event="refinement_rejected",
            message=f"Refinement {refinement.pk} rejected{': ' + reason if reason else ''}.",
        )


def refinement_supersede(refinement, *, by, reason, criteria_results):
    """Auto-approval's verdict on a pending candidate that passed but lost to ``by`` (the applied one)."""
    with transaction.atomic():
        return _record_decision(
            refinement, RefinementStatus.SUPERSEDED, allowed=[RefinementStatus.PENDING], actor=None, automatic=True,
            reason=reason, criteria_results=criteria_results, event="refinement_superseded",
            message=f"Refinement {refinement.pk} superseded: {reason}.", details={"superseded_by": by.pk},
        )


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
        activity_log(
            agent,
            event="refinement_applied",
            message=f"v{version.number} made current from refinement {best.pk} "
                    f"(was v{parent.number if parent else '-'}).",
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
        activity_log(
            agent,
            event="version_rolled_back",
            message=f"Rolled back to v{version.number}'s params as v{new.number}.",
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
