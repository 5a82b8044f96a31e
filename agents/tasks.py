"""Celery tasks: thin wrappers that take ids and call one service. All are idempotent."""

import random

from celery import shared_task

from agents.services import learning


@shared_task(bind=True, max_retries=None, acks_late=True)
def run_iteration_task(self, iteration_id):
    """Run a queued iteration; a redelivered message for a finished one does nothing."""
    try:
        learning.iteration_run(iteration_id)
    except learning.IterationDeferred as exc:
        # Over the lab-wide cap: the iteration stays queued and this message comes back later.
        raise self.retry(exc=exc, countdown=5 + random.uniform(0, 10))


@shared_task(ignore_result=True)
def continuous_tick_task():
    """The beat's minute tick of continuous learning; all its state is in the database."""
    from agents.services import continuous

    return continuous.continuous_tick()


@shared_task(ignore_result=True)
def reap_stuck_iterations_task():
    """Fail iterations whose worker was lost; re-send queued ones whose message was lost."""
    from agents.services import reaper

    return {"reaped": reaper.reap_stuck_iterations(), "requeued": reaper.requeue_lost_iterations()}


@shared_task(acks_late=True)
def scheduled_iteration_task(agent_id):
    """Beat's per-agent row `agent:<id>:learn` fires this; one iteration per schedule slot."""
    from agents.services import scheduling

    iteration = scheduling.scheduled_fire(agent_id)
    return iteration.pk if iteration is not None else None


@shared_task(acks_late=True)
def reconcile_schedules_task():
    """Every 5 minutes: beat rows back in line with the agents' columns (the source of truth)."""
    from agents.services import scheduling

    return scheduling.reconcile_schedules()
