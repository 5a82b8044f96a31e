"""Scheduled iterations: an agent's learning cron, its beat row, and each fire.

The agent's columns are the source of truth: `auto_learn_enabled`, `learning_schedule` (a
five-field cron, see `cron`) and `schedule_timezone` (an IANA name, default UTC); the beat row
derived from them is written only by `beat`. API, admin, commands and tasks call the functions
exported here; each validates first and changes nothing on bad input.

`next_scheduled_iteration` is the next fire time (UTC) while auto-learn is on and None while it
is off; it is recomputed on every change and after each scheduled run.

Slot rule (idempotency): a fire belongs to the latest fire time of the agent's cron at or
before now + SLOT_SKEW (which absorbs clock skew between the beat host and the worker). The
iteration is queued with idempotency key `schedule:<slot in UTC, to the minute>`, e.g.
`schedule:2025-01-06T09:00Z`; the key is unique per agent in the database, so two beat
processes, a redelivered message or a late duplicate for the same slot produce one iteration.
"""

import datetime as dt
import uuid

from django.db import transaction
from django.utils import timezone as djtz

from agents.models import IterationTrigger, TradingAgent
from agents.services.activity import activity_log
from agents.services.dispatch import iteration_start
from agents.services.scheduling.beat import (
    agent_schedule_remove,
    agent_schedule_sync,
    auto_learn_disable_bulk,
    auto_learn_enable_bulk,
    beat_row_remove,
    beat_row_sync,
    periodic_task_name,
    schedules_reconcile,
)
from agents.services.scheduling.cron import (
    ParsedCron,
    aware,
    describe_cron,
    iso,
    last_fire_at_or_before,
    next_after,
    next_fire_time,
    parse_cron,
    stored_schedule,
    zone_name,
)
from core.errors import ValidationFailed

__all__ = [
    "SLOT_SKEW",
    "ParsedCron",
    "agent_schedule_remove",
    "agent_schedule_sync",
    "auto_learn_disable",
    "auto_learn_disable_bulk",
    "auto_learn_enable",
    "auto_learn_enable_bulk",
    "beat_row_remove",
    "beat_row_sync",
    "describe_cron",
    "describe_schedule",
    "last_fire_at_or_before",
    "next_after",
    "next_fire_time",
    "parse_cron",
    "periodic_task_name",
    "schedule_set",
    "schedule_state",
    "scheduled_fire",
    "schedules_reconcile",
]

SLOT_SKEW = dt.timedelta(seconds=30)


def schedule_state(agent):
    """What the API and the admin show about an agent's schedule."""
    return {
        "auto_learn_enabled": agent.auto_learn_enabled,
        "learning_schedule": agent.learning_schedule,
        "schedule_timezone": agent.schedule_timezone,
        "description": describe_schedule(agent),
        "next_scheduled_iteration": agent.next_scheduled_iteration,
    }


def describe_schedule(agent):
    parsed = stored_schedule(agent.learning_schedule, agent.schedule_timezone, agent.pk)
    if parsed is None:
        return "no schedule" if not agent.learning_schedule else f"invalid schedule '{agent.learning_schedule}'"
    return f"{describe_cron(parsed.expression)} ({parsed.timezone})"


def _apply(agent, parsed, enabled, now=None):
    agent.learning_schedule = parsed.expression
    agent.schedule_timezone = parsed.timezone
    agent.auto_learn_enabled = enabled
    agent.next_scheduled_iteration = next_after(parsed, now or djtz.now()) if enabled else None
    agent.save(update_fields=[
        "learning_schedule", "schedule_timezone", "auto_learn_enabled", "next_scheduled_iteration", "updated_at",
    ])
    agent_schedule_sync(agent)


def _state_key(agent):
    return (agent.auto_learn_enabled, agent.learning_schedule, agent.schedule_timezone)


def _details(agent, before):
    return {
        "cron": agent.learning_schedule, "timezone": agent.schedule_timezone,
        "auto_learn_enabled": agent.auto_learn_enabled,
        "next_scheduled_iteration": iso(agent.next_scheduled_iteration),
        "previous": {"auto_learn_enabled": before[0], "cron": before[1], "timezone": before[2]},
    }


def schedule_set(agent, *, cron, timezone="UTC", actor):
    """Set the agent's learning cron (and zone); the beat row follows if auto-learn is on."""
    parsed = parse_cron(cron, timezone)
    before = _state_key(agent)
    with transaction.atomic():
        _apply(agent, parsed, agent.auto_learn_enabled)
        if before != _state_key(agent):
            activity_log(
                agent, event="schedule_set",
                message=f"Learning schedule set to '{parsed.expression}' ({parsed.timezone}): "
                f"{describe_cron(parsed.expression)}.",
                actor=actor, details=_details(agent, before),
            )
    return agent


def auto_learn_enable(agent, *, actor, cron=None, timezone=None):
    """Turn scheduled learning on, optionally setting the cron (zone default UTC) at the same time."""
    if cron is not None:
        parsed = parse_cron(cron, "UTC" if timezone is None else timezone)
    elif agent.learning_schedule:
        try:
            parsed = parse_cron(agent.learning_schedule, agent.schedule_timezone if timezone is None else timezone)
        except ValidationFailed as exc:
            raise ValidationFailed({"learning_schedule" if k == "cron" else k: v for k, v in exc.errors.items()})
    else:
        errors = {"learning_schedule": "set a schedule first (a five-field cron)"}
        if timezone is not None:
            try:
                zone_name(timezone)
            except ValidationFailed as exc:
                errors.update(exc.errors)
        raise ValidationFailed(errors)
    before = _state_key(agent)
    with transaction.atomic():
        _apply(agent, parsed, True)
        if before != _state_key(agent):
            activity_log(
                agent, event="auto_learn_enabled",
                message=f"Scheduled learning on: {describe_cron(parsed.expression)} ({parsed.timezone}); "
                f"next iteration at {agent.next_scheduled_iteration:%Y-%m-%d %H:%M} UTC.",
                actor=actor, details=_details(agent, before),
            )
    return agent


def auto_learn_disable(agent, *, actor):
    """Turn scheduled learning off; the schedule is kept and its beat row disabled."""
    before = _state_key(agent)
    with transaction.atomic():
        agent.auto_learn_enabled = False
        agent.next_scheduled_iteration = None
        agent.save(update_fields=["auto_learn_enabled", "next_scheduled_iteration", "updated_at"])
        agent_schedule_sync(agent)
        if before != _state_key(agent):
            activity_log(agent, event="auto_learn_disabled", message="Scheduled learning off.", actor=actor,
                         details=_details(agent, before))
    return agent


def scheduled_fire(agent_id, now=None):
    """What beat's task calls: queue the slot's iteration once, then move the next fire time.

    Re-reads the agent (the source of truth): gone, auto-learn off or no schedule means no
    iteration, and its row is removed or disabled. Returns the iteration or None.
    """
    now = aware(now or djtz.now())
    try:
        agent_uuid = uuid.UUID(str(agent_id))
    except ValueError:
        agent_schedule_remove(agent_id)
        return None
    agent = TradingAgent.objects.filter(pk=agent_uuid).first()
    if agent is None:
        agent_schedule_remove(agent_uuid)
        return None
    parsed = stored_schedule(agent.learning_schedule, agent.schedule_timezone, agent.pk)
    agent_schedule_sync(agent)  # heals a row edited by hand before acting on it
    if parsed is None or not agent.auto_learn_enabled:
        return None
    slot = last_fire_at_or_before(parsed, moment=now + SLOT_SKEW) or now.replace(second=0, microsecond=0)
    key = f"schedule:{slot.astimezone(dt.UTC):%Y-%m-%dT%H:%MZ}"
    iteration, created = iteration_start(agent, trigger=IterationTrigger.SCHEDULE, idempotency_key=key)
    next_fire = next_after(parsed, max(now, slot))
    # Conditional: a schedule changed meanwhile has computed its own next time.
    TradingAgent.objects.filter(
        pk=agent.pk, auto_learn_enabled=True, learning_schedule=parsed.expression,
        schedule_timezone=parsed.timezone,
    ).update(next_scheduled_iteration=next_fire)
    if created:
        activity_log(agent, event="scheduled_iteration_queued",
                     message=f"Scheduled iteration #{iteration.number} queued for {slot:%Y-%m-%d %H:%M} UTC "
                     f"({describe_cron(parsed.expression)}, {parsed.timezone}).",
                     details={"slot": iso(slot), "iteration": iteration.number, "next": iso(next_fire)})
    elif iteration.idempotency_key != key:
        activity_log(agent, event="scheduled_iteration_skipped",
                     message=f"Schedule slot {slot:%Y-%m-%d %H:%M} UTC skipped: iteration #{iteration.number} was "
                     f"already {iteration.status}.",
                     details={"slot": iso(slot), "iteration": iteration.number, "next": iso(next_fire)})
    return iteration
