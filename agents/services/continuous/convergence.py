"""Convergence and the bookkeeping after each iteration (the rules: see the package docstring)."""

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents import signals
from agents.models import ActivityLog, ContinuousState, IterationStatus, LearningIteration, TradingAgent
from agents.services.activity import activity_log
from agents.services.continuous.state import (
    CONVERGENCE_WINDOW,
    EVENT_CAPPED,
    EVENT_CONVERGED,
    EVENT_STARTED,
    LOOP_STATES,
    REASON_MAX,
    derive_state,
    loop_facts,
    loop_on,
)

logger = logging.getLogger(__name__)


def _loop_started_at(agent):
    return (
        ActivityLog.objects.filter(agent_id=agent.pk, event=EVENT_STARTED)
        .order_by("-created_at", "-id")
        .values_list("created_at", flat=True)
        .first()
    )


def convergence_window(agent):
    """The last CONVERGENCE_WINDOW succeeded iterations since the loop started, and the verdict."""
    since = _loop_started_at(agent)
    qs = LearningIteration.objects.filter(agent_id=agent.pk, status=IterationStatus.SUCCEEDED)
    if since is not None:
        qs = qs.filter(queued_at__gte=since)
    rows = list(qs.order_by("-number").values_list("number", "improvement")[:CONVERGENCE_WINDOW])
    improvements = [value for _number, value in rows]
    complete = len(rows) == CONVERGENCE_WINDOW and all(v is not None for v in improvements)
    mean_abs = sum(abs(v) for v in improvements) / len(rows) if complete else None
    return {
        "since": since,
        "iterations": [number for number, _value in rows],
        "improvements": improvements,
        "mean_abs_improvement": mean_abs,
        "converged": mean_abs is not None and mean_abs < agent.convergence_threshold,
    }


def after_iteration(iteration_id, now=None):
    """Bookkeeping once an iteration has committed: convergence, then capped / cooling_down.

    Called by agents.services.announce after commit, for every iteration; does nothing unless the
    agent's loop is on. Returns the agent's new state, or None when the loop is off.
    """
    now = now or timezone.now()
    iteration = LearningIteration.objects.select_related("agent").filter(pk=iteration_id).first()
    if iteration is None or not loop_on(iteration.agent):
        return None
    agent = iteration.agent
    if iteration.status == IterationStatus.SUCCEEDED:
        window = convergence_window(agent)
        if window["converged"]:
            _mark_converged(agent, window, iteration)
            return ContinuousState.CONVERGED
    facts = loop_facts(agent, now)
    state = derive_state(agent, facts, now)
    with transaction.atomic():
        changed = (
            TradingAgent.objects.filter(pk=agent.pk, continuous_learning_enabled=True, continuous_state__in=LOOP_STATES)
            .exclude(continuous_state=state)
            .update(continuous_state=state)
        )
        if changed and state == ContinuousState.CAPPED:
            activity_log(
                agent, event=EVENT_CAPPED,
                message=f"Daily cap reached: {facts['today']} iterations today (cap {agent.max_iterations_per_day}); "
                f"continuous learning resumes after midnight ({settings.TIME_ZONE}).",
                details={"iterations_today": facts["today"], "resumes_at": facts["day_end"].isoformat()},
            )
    return state


def _mark_converged(agent, window, iteration):
    threshold = agent.convergence_threshold
    numbers = ", ".join(f"#{n}" for n in reversed(window["iterations"]))
    reason = (
        f"converged: mean |improvement| {window['mean_abs_improvement']:.6f} over iterations {numbers} "
        f"is below the threshold {threshold}"
    )[:REASON_MAX]
    details = {
        "iteration_id": iteration.pk,
        "iterations": window["iterations"],
        "improvements": window["improvements"],
        "mean_abs_improvement": window["mean_abs_improvement"],
        "threshold": threshold,
    }
    with transaction.atomic():
        # Conditional: a second call (redelivery, a race) finds the loop off and sends nothing.
        updated = TradingAgent.objects.filter(
            pk=agent.pk, continuous_learning_enabled=True, continuous_state__in=LOOP_STATES
        ).update(
            continuous_learning_enabled=False, continuous_state=ContinuousState.CONVERGED,
            continuous_stop_reason=reason,
        )
        if not updated:
            return False
        activity_log(agent, event=EVENT_CONVERGED, message=f"Continuous learning stopped, {reason}.", details=details)
        agent_id = agent.pk
        transaction.on_commit(lambda: _send_converged(agent_id, reason, details))
    return True


def _send_converged(agent_id, reason, details):
    for receiver, result in signals.learning_converged.send_robust(
        sender=TradingAgent, agent_id=agent_id, reason=reason, details=details
    ):
        if isinstance(result, Exception):
            logger.error("learning_converged receiver %r failed for agent %s", receiver, agent_id, exc_info=result)
