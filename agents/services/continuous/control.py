"""Starting, stopping and reading the continuous-learning loop of one agent."""

from django.db import transaction
from django.utils import timezone

from agents.models import ContinuousState, IterationStatus, LearningIteration, TradingAgent
from agents.services.activity import activity_log, actor_label_for
from agents.services.continuous.convergence import convergence_window
from agents.services.continuous.state import (
    ACTIVE_STATUSES,
    CONVERGENCE_WINDOW,
    EVENT_STARTED,
    EVENT_STOPPED,
    REASON_MAX,
    derive_state,
    loop_facts,
    loop_on,
    next_eligible,
)
from core.errors import ValidationFailed


def continuous_start(agent, *, actor):
    """Turn the loop on (a converged or stopped agent restarts). Idempotent while it is on."""
    now = timezone.now()
    with transaction.atomic():
        fresh = TradingAgent.objects.select_for_update().get(pk=agent.pk)
        if loop_on(fresh):
            _copy_state(agent, fresh)
            return agent
        previous = fresh.continuous_state
        state = derive_state(fresh, loop_facts(fresh, now), now)
        TradingAgent.objects.filter(pk=fresh.pk).update(
            continuous_learning_enabled=True, continuous_state=state, continuous_stop_reason="", updated_at=now
        )
        restarted = " (restarted after convergence)" if previous == ContinuousState.CONVERGED else ""
        activity_log(
            fresh,
            event=EVENT_STARTED,
            message=f"Continuous learning started{restarted}: up to {fresh.max_iterations_per_day} iterations a day, "
            f"{fresh.min_iteration_gap_minutes} min apart, converged below {fresh.convergence_threshold}.",
            actor=actor,
            details={
                "previous_state": previous,
                "state": state,
                "max_iterations_per_day": fresh.max_iterations_per_day,
                "min_iteration_gap_minutes": fresh.min_iteration_gap_minutes,
                "convergence_threshold": fresh.convergence_threshold,
            },
        )
    agent.continuous_learning_enabled, agent.continuous_state, agent.continuous_stop_reason = True, state, ""
    return agent


def continuous_stop(agent, *, actor, reason=None):
    """Turn the loop off. An iteration already queued or running still finishes."""
    reason = (reason or "").strip() or f"stopped by {actor_label_for(actor)}"
    if len(reason) > REASON_MAX:
        raise ValidationFailed({"reason": f"must be at most {REASON_MAX} characters"})
    with transaction.atomic():
        fresh = TradingAgent.objects.select_for_update().get(pk=agent.pk)
        if not fresh.continuous_learning_enabled and fresh.continuous_state == ContinuousState.STOPPED:
            _copy_state(agent, fresh)
            return agent
        previous = fresh.continuous_state
        TradingAgent.objects.filter(pk=fresh.pk).update(
            continuous_learning_enabled=False,
            continuous_state=ContinuousState.STOPPED,
            continuous_stop_reason=reason,
            updated_at=timezone.now(),
        )
        activity_log(
            fresh, event=EVENT_STOPPED, message=f"Continuous learning stopped: {reason}.", actor=actor,
            details={"previous_state": previous, "reason": reason},
        )
    agent.continuous_learning_enabled, agent.continuous_state = False, ContinuousState.STOPPED
    agent.continuous_stop_reason = reason
    return agent


def _copy_state(target, source):
    target.continuous_learning_enabled = source.continuous_learning_enabled
    target.continuous_state = source.continuous_state
    target.continuous_stop_reason = source.continuous_stop_reason


def continuous_status(agent, now=None):
    """What the loop is doing now and why (four queries)."""
    now = now or timezone.now()
    facts = loop_facts(agent, now)
    on = loop_on(agent)
    if on:
        state = derive_state(agent, facts, now)
    else:
        state = agent.continuous_state if agent.continuous_state == ContinuousState.CONVERGED else "stopped"
    active = (
        LearningIteration.objects.filter(agent_id=agent.pk, status__in=ACTIVE_STATUSES)
        .values("id", "number", "status", "trigger", "queued_at", "started_at")
        .first()
    )
    recent = list(
        LearningIteration.objects.filter(agent_id=agent.pk, status=IterationStatus.SUCCEEDED)
        .order_by("-number")
        .values_list("improvement", flat=True)[:CONVERGENCE_WINDOW]
    )
    window = convergence_window(agent)
    return {
        "state": state,
        "enabled": agent.continuous_learning_enabled,
        "iterations_today": facts["today"],
        "max_iterations_per_day": agent.max_iterations_per_day,
        "min_iteration_gap_minutes": agent.min_iteration_gap_minutes,
        "day_ends_at": facts["day_end"],
        "last_finished_at": facts["last_finished"],
        "next_eligible_at": next_eligible(agent, facts, now) if on else None,
        "last_improvements": recent,
        "convergence": {
            "threshold": agent.convergence_threshold,
            "window": CONVERGENCE_WINDOW,
            "counted_since": window["since"],
            "improvements": window["improvements"],
            "mean_abs_improvement": window["mean_abs_improvement"],
        },
        "stop_reason": agent.continuous_stop_reason,
        "active_iteration": active,
    }
