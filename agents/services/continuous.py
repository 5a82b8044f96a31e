"""Continuous learning: an agent runs one iteration after another by itself, within bounds.

The loop is driven by the beat, not by a worker: `continuous_tick` runs every minute
(CELERY_BEAT_SCHEDULE "continuous-learning-tick") and every fact it needs is in the database
(the agent's continuous_* columns and its iteration rows). A worker or beat restart loses
nothing; a missed tick is caught up by the next one.

States (TradingAgent.continuous_state)
    stopped       not learning continuously: never started, or stopped by a person.
    running       the loop is on and not held back: an iteration is queued or running, or the
                  agent is due and waits for the next tick (or for room in the queue, below).
    cooling_down  the last iteration ended less than min_iteration_gap_minutes ago.
    capped        max_iterations_per_day iterations today; it resumes by itself the next day.
    converged     learning stopped because the score stopped moving (Convergence, below);
                  continuous_learning_enabled is cleared. Starting it again restarts the loop.
The stored state is refreshed after each iteration (`after_iteration`) and by each tick, so it
lags by at most a minute; `continuous_status` derives it from the rows at the time asked.

Rules
    Day boundary: a day is [local midnight, next local midnight) in settings.TIME_ZONE (the lab's
        time zone, also the beat's). Midnights are wall-clock ones, so a DST day lasts 23 or 25 h.
    Daily cap: every iteration row of the agent whose queued_at falls within today counts,
        whatever its trigger (manual, schedule, api, continuous) and its outcome (failed ones
        too): the cap bounds what one agent costs per day, and a failed run cost as much. The cap
        only stops the loop from queueing; a person's manual iteration is never refused by it.
    Cooldown: an iteration is queued once min_iteration_gap_minutes have passed since the agent's
        last iteration ended (its latest finished_at, any trigger); never, while one is queued or
        running. With no finished iteration the agent is due at once; a gap of 0 means the next tick.
    Queue depth: a tick queues at most QUEUE_DEPTH_PER_SLOT * LAB_MAX_CONCURRENT_ITERATIONS minus
        the iterations already waiting in the queue lab-wide, longest-waiting agents first (never
        finished, then oldest finished_at). Queueing thousands at once would only pile up deferred
        messages behind the concurrency cap; the rest are queued by the next ticks.
    Convergence: improvement is defined in agents.services.learning (relative change of the
        validation score against the previous succeeded iteration). After a succeeded iteration,
        the loop has converged when the last CONVERGENCE_WINDOW (3) succeeded iterations since the
        loop was last started all have an improvement and the MEAN OF THEIR ABSOLUTE VALUES is below
        convergence_threshold: the score has stopped moving. Absolute values because a score that
        swings +20% / -20% has not converged, while a signed mean would cancel it out to ~0 (and
        would call a steadily worsening loop "converged": that one is bounded by the daily cap and
        is the performance monitor's business). Only iterations queued since the last start count,
        so a restarted agent runs at least three more before it can converge again. A threshold of
        0 never converges. On convergence the event is logged and `learning_converged` is sent once,
        after commit.
"""

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import (
    Count,
    DateTimeField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    Max,
    OuterRef,
    Q,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.db.models.lookups import GreaterThan, LessThanOrEqual
from django.utils import timezone

from agents import signals
from agents.models import (
    ActivityLog,
    ContinuousState,
    IterationStatus,
    IterationTrigger,
    LearningIteration,
    TradingAgent,
)
from agents.services.activity import actor_label_for, log_activity
from core.errors import ValidationFailed

logger = logging.getLogger(__name__)

LOOP_STATES = (ContinuousState.RUNNING, ContinuousState.COOLING_DOWN, ContinuousState.CAPPED)
ACTIVE_STATUSES = (IterationStatus.QUEUED, IterationStatus.RUNNING)
CONVERGENCE_WINDOW = 3
QUEUE_DEPTH_PER_SLOT = 4
EVENT_STARTED = "continuous_started"
EVENT_STOPPED = "continuous_stopped"
EVENT_CAPPED = "continuous_capped"
EVENT_CONVERGED = "continuous_converged"
# Stands in for "never finished" so the SQL eligibility test has no NULL in it.
_LONG_AGO = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_REASON_MAX = 300


# --- time ---------------------------------------------------------------------------------
def day_bounds(now=None):
    """Today's [start, end) in settings.TIME_ZONE, as aware datetimes."""
    now = now or timezone.now()
    tz = timezone.get_default_timezone()
    day = timezone.localtime(now, tz).date()
    start = dt.datetime.combine(day, dt.time.min, tzinfo=tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    return start, end


def _facts(agent, now):
    """Today's count, last end and active count of one agent, in one query."""
    start, end = day_bounds(now)
    facts = LearningIteration.objects.filter(agent_id=agent.pk).aggregate(
        today=Count("pk", filter=Q(queued_at__gte=start, queued_at__lt=end)),
        last_finished=Max("finished_at"),
        active=Count("pk", filter=Q(status__in=ACTIVE_STATUSES)),
    )
    facts["day_end"] = end
    return facts


def _derive_state(agent, facts, now):
    """The loop state the rules give for an agent whose loop is on."""
    if facts["active"]:
        return ContinuousState.RUNNING
    if facts["today"] >= agent.max_iterations_per_day:
        return ContinuousState.CAPPED
    last = facts["last_finished"]
    if last is not None and last + dt.timedelta(minutes=agent.min_iteration_gap_minutes) > now:
        return ContinuousState.COOLING_DOWN
    return ContinuousState.RUNNING


def _next_eligible(agent, facts, now):
    if facts["active"]:
        return None  # known once the active iteration ends
    moments = [now]
    if facts["last_finished"] is not None:
        moments.append(facts["last_finished"] + dt.timedelta(minutes=agent.min_iteration_gap_minutes))
    if facts["today"] >= agent.max_iterations_per_day:
        moments.append(facts["day_end"])
    return max(moments)


def _loop_on(agent):
    return agent.continuous_learning_enabled and agent.continuous_state in LOOP_STATES


# --- start / stop -------------------------------------------------------------------------
def continuous_start(agent, *, actor):
    """Turn the loop on (a converged or stopped agent restarts). Idempotent while it is on."""
    now = timezone.now()
    with transaction.atomic():
        fresh = TradingAgent.objects.select_for_update().get(pk=agent.pk)
        if _loop_on(fresh):
            _copy_state(agent, fresh)
            return agent
        previous = fresh.continuous_state
        state = _derive_state(fresh, _facts(fresh, now), now)
        TradingAgent.objects.filter(pk=fresh.pk).update(
            continuous_learning_enabled=True, continuous_state=state, continuous_stop_reason="", updated_at=now
        )
        restarted = " (restarted after convergence)" if previous == ContinuousState.CONVERGED else ""
        log_activity(
            fresh,
            EVENT_STARTED,
            f"Continuous learning started{restarted}: up to {fresh.max_iterations_per_day} iterations a day, "
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
    if len(reason) > _REASON_MAX:
        raise ValidationFailed({"reason": f"must be at most {_REASON_MAX} characters"})
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
        log_activity(
            fresh, EVENT_STOPPED, f"Continuous learning stopped: {reason}.", actor=actor,
            details={"previous_state": previous, "reason": reason},
        )
    agent.continuous_learning_enabled, agent.continuous_state = False, ContinuousState.STOPPED
    agent.continuous_stop_reason = reason
    return agent


def _copy_state(target, source):
    target.continuous_learning_enabled = source.continuous_learning_enabled
    target.continuous_state = source.continuous_state
    target.continuous_stop_reason = source.continuous_stop_reason


# --- status -------------------------------------------------------------------------------
def continuous_status(agent, now=None):
    """What the loop is doing now and why (four queries)."""
    now = now or timezone.now()
    facts = _facts(agent, now)
    on = _loop_on(agent)
    if on:
        state = _derive_state(agent, facts, now)
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
        "next_eligible_at": _next_eligible(agent, facts, now) if on else None,
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


# --- convergence and bookkeeping after each iteration ------------------------------------
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

    Called by learning._announce after commit, for every iteration; does nothing unless the
    agent's loop is on. Returns the agent's new state, or None when the loop is off.
    """
    now = now or timezone.now()
    iteration = LearningIteration.objects.select_related("agent").filter(pk=iteration_id).first()
    if iteration is None or not _loop_on(iteration.agent):
        return None
    agent = iteration.agent
    if iteration.status == IterationStatus.SUCCEEDED:
        window = convergence_window(agent)
        if window["converged"]:
            _mark_converged(agent, window, iteration)
            return ContinuousState.CONVERGED
    facts = _facts(agent, now)
    state = _derive_state(agent, facts, now)
    with transaction.atomic():
        changed = (
            TradingAgent.objects.filter(pk=agent.pk, continuous_learning_enabled=True, continuous_state__in=LOOP_STATES)
            .exclude(continuous_state=state)
            .update(continuous_state=state)
        )
        if changed and state == ContinuousState.CAPPED:
            log_activity(
                agent, EVENT_CAPPED,
                f"Daily cap reached: {facts['today']} iterations today (cap {agent.max_iterations_per_day}); "
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
    )[:_REASON_MAX]
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
        log_activity(agent, EVENT_CONVERGED, f"Continuous learning stopped, {reason}.", details=details)
        agent_id = agent.pk
        transaction.on_commit(lambda: _send_converged(agent_id, reason, details))
    return True


def _send_converged(agent_id, reason, details):
    for receiver, result in signals.learning_converged.send_robust(
        sender=TradingAgent, agent_id=agent_id, reason=reason, details=details
    ):
        if isinstance(result, Exception):
            logger.error("learning_converged receiver %r failed for agent %s", receiver, agent_id, exc_info=result)


# --- the beat's tick ----------------------------------------------------------------------
def continuous_tick(now=None):
    """Refresh loop states and queue the due agents' iterations, in a fixed number of queries.

    At most: a count of the queue, three conditional UPDATEs (capped, cooling_down, running),
    one SELECT of due agents, one INSERT of the iterations (INSERT ... ignore conflicts; the
    budget keeps it to one batch) and one SELECT reading them back. `now` defaults to the
    current time; iterations get queued_at = the current time (auto_now_add).
    """
    from agents.services.dispatch import iteration_dispatch

    now = now or timezone.now()
    start, end = day_bounds(now)
    summary = {"at": now.isoformat(), "capped": 0, "cooling": 0, "resumed": 0, "queued": 0, "budget": 0}
    iterations = LearningIteration.objects.filter(agent=OuterRef("pk"))
    today = Coalesce(
        Subquery(
            iterations.filter(queued_at__gte=start, queued_at__lt=end)
            .order_by().values("agent").annotate(c=Count("pk")).values("c")
        ),
        Value(0),
        output_field=IntegerField(),
    )
    last_finished = Coalesce(
        Subquery(iterations.filter(finished_at__isnull=False).order_by("-finished_at").values("finished_at")[:1]),
        Value(_LONG_AGO),
        output_field=DateTimeField(),
    )
    # Wrapped as IntegerField: SQLite's duration arithmetic refuses a PositiveIntegerField.
    minutes = ExpressionWrapper(F("min_iteration_gap_minutes"), output_field=IntegerField())
    gap = ExpressionWrapper(minutes * Value(dt.timedelta(minutes=1)), output_field=DurationField())
    eligible_at = ExpressionWrapper(last_finished + gap, output_field=DateTimeField())
    last_number = Coalesce(
        Subquery(iterations.order_by("-number").values("number")[:1]), Value(0), output_field=IntegerField()
    )

    with transaction.atomic():
        idle = TradingAgent.objects.filter(
            ~Exists(iterations.filter(status__in=ACTIVE_STATUSES)),
            continuous_learning_enabled=True,
            continuous_state__in=LOOP_STATES,
        )
        summary["capped"] = (
            idle.exclude(continuous_state=ContinuousState.CAPPED)
            .filter(max_iterations_per_day__lte=today)
            .update(continuous_state=ContinuousState.CAPPED)
        )
        under_cap = idle.filter(max_iterations_per_day__gt=today)
        summary["cooling"] = (
            under_cap.exclude(continuous_state=ContinuousState.COOLING_DOWN)
            .filter(GreaterThan(eligible_at, Value(now)))
            .update(continuous_state=ContinuousState.COOLING_DOWN)
        )
        summary["resumed"] = (
            under_cap.exclude(continuous_state=ContinuousState.RUNNING)
            .filter(LessThanOrEqual(eligible_at, Value(now)))
            .update(continuous_state=ContinuousState.RUNNING)
        )
        waiting = LearningIteration.objects.filter(status=IterationStatus.QUEUED).count()
        budget = max(0, QUEUE_DEPTH_PER_SLOT * settings.LAB_MAX_CONCURRENT_ITERATIONS - waiting)
        summary["budget"] = budget
        if budget == 0:
            return summary
        due = list(
            under_cap.filter(LessThanOrEqual(eligible_at, Value(now)), continuous_state=ContinuousState.RUNNING)
            .annotate(last_number=last_number, last_finished=last_finished)
            .order_by("last_finished", "pk")
            .values_list("pk", "current_version_id", "last_number")[:budget]
        )
        if not due:
            return summary
        minute = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%MZ")
        keys = {agent_id: f"continuous:{agent_id}:{minute}" for agent_id, _v, _n in due}
        # ignore_conflicts: the database refuses a second active iteration, a number taken
        # meanwhile or a key already used this minute; those agents are simply not queued.
        LearningIteration.objects.bulk_create(
            [
                LearningIteration(
                    agent_id=agent_id, number=number + 1, trigger=IterationTrigger.CONTINUOUS,
                    status=IterationStatus.QUEUED, idempotency_key=keys[agent_id], version_id=version_id,
                )
                for agent_id, version_id, number in due
            ],
            ignore_conflicts=True,
        )
        queued = list(
            LearningIteration.objects.filter(
                agent_id__in=keys, idempotency_key__in=keys.values(), status=IterationStatus.QUEUED
            )
            .order_by()
            .values_list("pk", flat=True)
        )
        for iteration_id in queued:
            iteration_dispatch(iteration_id)  # a broker that is down is logged; the rows stay queued
        summary["queued"] = len(queued)
    return summary
