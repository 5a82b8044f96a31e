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
