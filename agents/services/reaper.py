"""Keeps iterations from staying stuck.

- A pool process that dies mid-iteration (SIGKILL, the OOM killer) is reported by its worker's
  main process at once (Celery's WorkerLostError): iteration_fail_lost marks the iteration failed
  then, so the agent is free within seconds.
- An iteration `running` for longer than the hard time limit (plus a grace period) lost its
  worker with nobody to report it (the whole worker or machine gone): the reaper marks it failed.
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
from agents.services.activity import activity_log
from agents.services.announce import announce_iteration_finished
from agents.services.dispatch import send_to_worker

logger = logging.getLogger(__name__)

GRACE_SECONDS = 60


def iterations_reap_stuck(now=None):
    now = now or timezone.now()
    limit = now - dt.timedelta(seconds=settings.LAB_ITERATION_TIME_LIMIT + GRACE_SECONDS)
    stuck = list(
        LearningIteration.objects.filter(status=IterationStatus.RUNNING, started_at__lt=limit).select_related("agent")
    )
    reaped = 0
    for iteration in stuck:
        error = (
            f"worker lost: still running {int((now - iteration.started_at).total_seconds())} s after start, "
            f"past the {settings.LAB_ITERATION_TIME_LIMIT} s hard limit; marked failed by the reaper"
        )
        reaped += _fail_running(iteration, error, now,
                                f"Iteration #{iteration.number} marked failed: its worker was lost.")
    return reaped


def iteration_fail_lost(iteration_id, *, reason, now=None):
    """The process running this iteration died and its worker said so (WorkerLostError): fail it
    now if it is still running. Idempotent; False when there was nothing to fail."""
    iteration = LearningIteration.objects.filter(pk=iteration_id, status=IterationStatus.RUNNING).select_related(
        "agent").first()
    if iteration is None:
        return False
    error = f"worker lost: the process running the iteration died ({reason}); marked failed by its worker"
    failed = _fail_running(iteration, error, now or timezone.now(),
                           f"Iteration #{iteration.number} marked failed: the process running it died.")
    if failed:
        logger.warning("iteration %s of agent %s: %s", iteration.pk, iteration.agent_id, error)
    return bool(failed)


def _fail_running(iteration, error, now, activity_message):
    """running -> failed with `error` (a conditional update: once), the activity line and the
    after-commit announcement (alerts, graduation, continuous learning). 1 if it was failed here."""
    with transaction.atomic():
        updated = LearningIteration.objects.filter(pk=iteration.pk, status=IterationStatus.RUNNING).update(
            status=IterationStatus.FAILED, finished_at=now, error=error,
        )
        if not updated:
            return 0
        iteration.status = IterationStatus.FAILED
        iteration.error = error
        activity_log(iteration.agent, event="iteration_reaped", message=activity_message,
                     details={"iteration": iteration.number})
        announce_iteration_finished(iteration)
    return 1


def iterations_requeue_lost(now=None):
    """Send again the task of iterations queued long ago and never started; returns how many
    were sent. A broker still down stops the round (dispatch logs it): the next one retries."""
    now = now or timezone.now()
    older = now - dt.timedelta(seconds=settings.LAB_REQUEUE_AFTER_SECONDS)
    ids = list(
        LearningIteration.objects.filter(status=IterationStatus.QUEUED, queued_at__lt=older).values_list(
            "pk", flat=True
        )[:500]
    )
    sent = 0
    for iteration_id in ids:
        if not send_to_worker(iteration_id):
            break
        sent += 1
    if sent:
        logger.info("re-sent %d queued iterations whose message may have been lost", sent)
    return sent
