"""Queueing an iteration and handing it to a worker: the database decides, the broker nudges.

- iteration_queue: at most one queued-or-running iteration per agent and one per idempotency
  key (partial unique constraints), so concurrent triggers join the active one.
- iteration_claim: queued -> running, serialised against LAB_MAX_CONCURRENT_ITERATIONS.
- iteration_start / iteration_dispatch: queue, then send the task after commit; a broker
  that is down leaves the row queued for the reaper to re-send.
"""

import logging

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from agents import task_names
from agents.models import IterationStatus, LearningIteration
from config import task_messages

logger = logging.getLogger(__name__)

ACTIVE_STATUSES = (IterationStatus.QUEUED, IterationStatus.RUNNING)
# Arbitrary constant naming the lab's "claim an iteration slot" advisory lock.
CLAIM_LOCK_KEY = 804_201


class IterationDeferred(Exception):
    """The lab-wide cap of concurrent iterations is reached: run this one later."""


def iteration_queue(agent, *, trigger, requested_by=None, idempotency_key=None):
    """Queue an iteration; returns (iteration, created).

    An agent has at most one queued-or-running iteration (a partial unique constraint), so a
    trigger while one is active returns that one; an idempotency key already used returns
    the iteration it produced.
    """
    for _attempt in range(5):
        existing = _existing_for_trigger(agent, idempotency_key)
        if existing is not None:
            return existing, False
        number = (LearningIteration.objects.filter(agent=agent).aggregate(m=Max("number"))["m"] or 0) + 1
        try:
            with transaction.atomic():
                iteration = LearningIteration.objects.create(
                    agent=agent,
                    number=number,
                    trigger=trigger,
                    requested_by=requested_by if getattr(requested_by, "pk", None) else None,
                    idempotency_key=idempotency_key,
                    version_id=agent.current_version_id,
                )
            return iteration, True
        except IntegrityError:
            # Another trigger won the race (same number, an active iteration, or same key).
            continue
    existing = _existing_for_trigger(agent, idempotency_key)
    if existing is None:
        raise RuntimeError(f"could not queue an iteration for agent {agent.pk}")
    return existing, False


def _existing_for_trigger(agent, idempotency_key):
    if idempotency_key:
        found = LearningIteration.objects.filter(agent=agent, idempotency_key=idempotency_key).first()
        if found is not None:
            return found
    return LearningIteration.objects.filter(agent=agent, status__in=ACTIVE_STATUSES).first()


def running_count():
    return LearningIteration.objects.filter(status=IterationStatus.RUNNING).count()


def iteration_claim(iteration_id):
    """Move a queued iteration to running. False when another process has it or it ran.

    The count against the lab-wide cap and the claim are one serialised step: SQLite's
    IMMEDIATE transactions already serialise writers; on PostgreSQL a transaction-scoped
    advisory lock does, so two workers cannot both take the last slot.
    """
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CLAIM_LOCK_KEY])
            if running_count() >= settings.LAB_MAX_CONCURRENT_ITERATIONS:
                raise IterationDeferred(f"{settings.LAB_MAX_CONCURRENT_ITERATIONS} iterations already running")
            claimed = LearningIteration.objects.filter(pk=iteration_id, status=IterationStatus.QUEUED).update(
                status=IterationStatus.RUNNING, started_at=timezone.now()
            )
    except IntegrityError:
        return False
    return bool(claimed)


def iteration_start(agent, *, trigger, requested_by=None, idempotency_key=None):
    """Queue an iteration and hand it to a worker once the queueing transaction commits."""
    iteration, created = iteration_queue(
        agent, trigger=trigger, requested_by=requested_by, idempotency_key=idempotency_key
    )
    if created:
        iteration_dispatch(iteration.pk)
    return iteration, created


def iteration_dispatch(iteration_id):
    """Hand a queued iteration to a worker once the current transaction commits.

    The row is the source of truth and the message only a nudge. When the broker cannot take
    the message (down, unreachable, full), the error is logged and the iteration stays queued:
    the caller (API, beat's tasks, continuous tick) still succeeds, and the reaper re-sends it
    once it has waited LAB_REQUEUE_AFTER_SECONDS (agents.services.reaper); a duplicate message
    is harmless because the worker claims the iteration with a conditional update.
    """
    transaction.on_commit(lambda: send_to_worker(iteration_id))


def send_to_worker(iteration_id):
    """Send the iteration's task now; False (logged) when the broker cannot take it."""
    try:
        task_messages.send(task_names.RUN_ITERATION, iteration_id)
    except Exception as exc:  # kombu's OperationalError, or whatever the transport raises
        logger.error(
            "iteration %s is queued but could not be handed to a worker: the task broker is unreachable "
            "(%s: %s); it stays queued and is sent again by the reaper after %s s",
            iteration_id, type(exc).__name__, exc, settings.LAB_REQUEUE_AFTER_SECONDS,
        )
        return False
    return True
