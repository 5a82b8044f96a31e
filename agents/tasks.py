"""Celery tasks: thin wrappers that take ids and call one service. All are idempotent.

Imports point one way: tasks import services, never the reverse; services send work by the
names in agents.task_names (config.task_messages)."""

import logging
import multiprocessing
import random

from billiard.exceptions import WorkerLostError
from celery import shared_task
from celery.exceptions import Reject
from celery.signals import task_failure, worker_ready, worker_shutting_down
from django.db import InterfaceError, OperationalError

from agents import task_names
from agents.market.feeds import service as feed_service
from agents.market.uploads import run_bar_import
from agents.services import continuous, dispatch, learning, reaper, scheduling

logger = logging.getLogger(__name__)

DB_RETRIES = 10

# --- warm shutdown ----------------------------------------------------------------------------
# A worker told to stop (SIGTERM) finishes what it runs and starts nothing new. With a polling
# transport (the embedded filesystem broker) Celery keeps fetching while it waits for running
# tasks, so on the shutdown signal the task channel stops consuming, and an iteration fetched
# just before is handed back to the broker instead of started. The flag is a shared byte: set
# in the worker's main process, read by its pool processes (forked after this import).
_WORKER_STOPPING = multiprocessing.RawValue("b", 0)
_CONSUMER = []


@worker_ready.connect(weak=False, dispatch_uid="agents.tasks.remember_consumer")
def _remember_consumer(sender=None, **kwargs):
    _CONSUMER[:] = [sender]


@worker_shutting_down.connect(weak=False, dispatch_uid="agents.tasks.stop_consuming")
def _stop_consuming(**kwargs):
    _WORKER_STOPPING.value = 1
    task_consumer = getattr(_CONSUMER[0], "task_consumer", None) if _CONSUMER else None
    if task_consumer is not None:
        # Runs in a signal handler: one attribute assignment, nothing that could block.
        task_consumer.channel.qos.can_consume = lambda: False


# reject_on_worker_lost=False: when the pool process running an iteration dies, the message is
# acknowledged (not put back: a redelivery would find the iteration running and do nothing) and
# task_failure fires in the worker's main process, which fails the iteration at once (below).
@shared_task(name=task_names.RUN_ITERATION, bind=True, max_retries=None, acks_late=True,
             reject_on_worker_lost=False)
def run_iteration_task(self, iteration_id):
    """Run a queued iteration; a redelivered message for a finished one does nothing."""
    if _WORKER_STOPPING.value:
        # Back to the broker untouched, for the next worker.
        raise Reject("worker shutting down: iteration left for the next worker", requeue=True)
    try:
        learning.iteration_run(iteration_id)
    except dispatch.IterationDeferred as exc:
        # Over the lab-wide cap: the iteration stays queued and this message comes back later.
        raise self.retry(exc=exc, countdown=5 + random.uniform(0, 10))
    except (OperationalError, InterfaceError) as exc:
        # The database was unavailable (SQLite busy past its timeout, PostgreSQL restarting).
        # Before the claim nothing was written and the retry runs the iteration; after it (its
        # outcome could not be recorded, see learning) the retry finds it running and does
        # nothing: the reaper ends it.
        raise self.retry(exc=exc, countdown=2 + random.uniform(0, 3), max_retries=DB_RETRIES)


@task_failure.connect(sender=run_iteration_task, weak=False, dispatch_uid="agents.tasks.iteration_worker_lost")
def _iteration_worker_lost(sender=None, exception=None, args=None, kwargs=None, **extra):
    """In the worker's main process: the pool process running an iteration died (SIGKILL, OOM, a
    cold shutdown). The broker and Celery know at once; the reaper would only notice minutes later."""
    if not isinstance(exception, WorkerLostError):
        return
    iteration_id = args[0] if args else (kwargs or {}).get("iteration_id")
    if iteration_id is None:
        return
    try:
        reaper.iteration_fail_lost(iteration_id, reason=str(exception) or type(exception).__name__)
    except Exception:  # the reaper is the safety net; never break the worker's main loop
        logger.exception("could not fail iteration %s after its worker process was lost", iteration_id)


@shared_task(name=task_names.CONTINUOUS_TICK, ignore_result=True)
def continuous_tick_task():
    """The beat's minute tick of continuous learning; all its state is in the database."""
    return continuous.continuous_tick()


@shared_task(name=task_names.REAP_STUCK_ITERATIONS, ignore_result=True)
def reap_stuck_iterations_task():
    """Fail iterations whose worker was lost; re-send queued ones whose message was lost."""
    return {"reaped": reaper.iterations_reap_stuck(), "requeued": reaper.iterations_requeue_lost()}


@shared_task(name=task_names.SCHEDULED_ITERATION, acks_late=True)
def scheduled_iteration_task(agent_id):
    """Beat's per-agent row `agent:<id>:learn` fires this; one iteration per schedule slot."""
    iteration = scheduling.scheduled_fire(agent_id)
    return iteration.pk if iteration is not None else None


@shared_task(name=task_names.RECONCILE_SCHEDULES, acks_late=True)
def reconcile_schedules_task():
    """Every 5 minutes: beat rows back in line with the agents' columns (the source of truth)."""
    return scheduling.schedules_reconcile()


@shared_task(name=task_names.IMPORT_BARS, ignore_result=True, acks_late=True)
def bar_import_task(import_id):
    """Import an uploaded bar file saved for a worker (agents.market.uploads); a redelivery does nothing."""
    job = run_bar_import(import_id)
    return job.status if job is not None else None


@shared_task(name=task_names.POLL_BAR_FEED, ignore_result=True)
def poll_bar_feed_task(instrument_id):
    """Beat's per-instrument row `instrument:<id>:feed` fires this: fetch the new bars (agents.market.feeds)."""
    return feed_service.poll_feed(instrument_id)
