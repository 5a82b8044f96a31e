"""Keeps iterations from staying stuck.

- An iteration `running` for longer than the hard time limit (plus a grace period) lost its
  worker (killed, OOM, machine gone): it is marked failed so the agent is free again.
- An iteration `queued` for longer than LAB_REQUEUE_AFTER_SECONDS whose message was lost
  (the broker was down when it was sent) is sent again; running it twice is impossible
  because the worker claims it with a conditional update.
"""

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents.models import IterationStatus, LearningIteration
from agents.services.activity import log_activity

logger = logging.getLogger(__name__)

GRACE_SECONDS = 60


def reap_stuck_iterations(now=None):
    now = now or timezone.now()
    limit = now - dt.timedelta(seconds=settings.LAB_ITERATION_TIME_LIMIT + GRACE_SECONDS)
    stuck = list(
        LearningIteration.objects.filter(status=IterationStatus.RUNNING, started_at__lt=limit).select_related("agent")
    )
    reaped = 0
    for iteration in stuck:
        with transaction.atomic():
            updated = LearningIteration.objects.filter(pk=iteration.pk, status=IterationStatus.RUNNING).update(
                status=IterationStatus.FAILED,
                finished_at=now,
                error=(
                    f"worker lost: still running {int((now - iteration.started_at).total_seconds())} s after start, "
                    f"past the {settings.LAB_ITERATION_TIME_LIMIT} s hard limit; marked failed by the reaper"
                ),
            )
            if updated:
                reaped += 1
                iteration.status = IterationStatus.FAILED
                log_activity(iteration.agent, "iteration_reaped",
                             f"Iteration #{iteration.number} marked failed: its worker was lost.",
                             details={"iteration": iteration.number})
                from agents.services.learning import _announce

                _announce(iteration)
    return reaped


def requeue_lost_iterations(now=None):
    """Send again the task of iterations queued long ago and never started."""
    from agents.tasks import run_iteration_task

    now = now or timezone.now()
    older = now - dt.timedelta(seconds=settings.LAB_REQUEUE_AFTER_SECONDS)
    ids = list(
        LearningIteration.objects.filter(status=IterationStatus.QUEUED, queued_at__lt=older).values_list(
            "pk", flat=True
        )[:500]
    )
    for iteration_id in ids:
        run_iteration_task.delay(iteration_id)
    if ids:
        logger.info("re-sent %d queued iterations whose message may have been lost", len(ids))
    return len(ids)
