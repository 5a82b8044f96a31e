import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from agents import tasks
from agents.models import ActivityLog, IterationStatus, LearningIteration
from agents.services import reaper
from tests.factories import make_agent

pytestmark = pytest.mark.django_db


def test_an_iteration_running_past_the_hard_limit_is_failed_and_the_agent_freed(settings):
    settings.LAB_ITERATION_TIME_LIMIT = 360
    agent = make_agent()
    with time_machine.travel(dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC), tick=False):
        stuck = LearningIteration.objects.create(agent=agent, number=1, status=IterationStatus.RUNNING,
                                                 started_at=timezone.now())
    with time_machine.travel(dt.datetime(2026, 3, 2, 12, 6, tzinfo=dt.UTC), tick=False):
        assert reaper.iterations_reap_stuck() == 0  # within the limit: maybe still working
    with time_machine.travel(dt.datetime(2026, 3, 2, 12, 8, tzinfo=dt.UTC), tick=False):
        assert reaper.iterations_reap_stuck() == 1
        assert reaper.iterations_reap_stuck() == 0  # idempotent
    stuck.refresh_from_db()
    assert stuck.status == IterationStatus.FAILED
    assert "worker lost" in stuck.error
    assert ActivityLog.objects.filter(agent=agent, event="iteration_reaped").count() == 1
    # The agent can learn again.
    from agents.services import dispatch

    _iteration, created = dispatch.iteration_queue(agent, trigger="manual")
    assert created


def test_queued_iterations_whose_message_was_lost_are_sent_again(settings, monkeypatch):
    settings.LAB_REQUEUE_AFTER_SECONDS = 600
    sent = []
    monkeypatch.setattr("config.task_messages.send", lambda name, *args: sent.append((name, *args)))
    agent = make_agent()
    with time_machine.travel(dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC), tick=False):
        lost = LearningIteration.objects.create(agent=agent, number=1)
    with time_machine.travel(dt.datetime(2026, 3, 2, 12, 5, tzinfo=dt.UTC), tick=False):
        assert reaper.iterations_requeue_lost() == 0
    with time_machine.travel(dt.datetime(2026, 3, 2, 12, 11, tzinfo=dt.UTC), tick=False):
        assert reaper.iterations_requeue_lost() == 1
    assert sent == [(tasks.run_iteration_task.name, lost.pk)]


def test_a_broker_still_down_leaves_the_lost_iterations_queued_for_the_next_round(settings, monkeypatch, caplog):
    settings.LAB_REQUEUE_AFTER_SECONDS = 600
    attempts = []

    def broker_down(name, *args, **kwargs):
        attempts.append(args)
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    monkeypatch.setattr("config.task_messages.send", broker_down)
    with time_machine.travel(dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC), tick=False):
        lost = [LearningIteration.objects.create(agent=make_agent(), number=1) for _ in range(3)]
    with time_machine.travel(dt.datetime(2026, 3, 2, 12, 11, tzinfo=dt.UTC), tick=False):
        assert reaper.iterations_requeue_lost() == 0
    assert len(attempts) == 1  # the round stops at the first refusal instead of timing out on each
    assert "could not be handed to a worker" in caplog.text
    statuses = LearningIteration.objects.filter(pk__in=[i.pk for i in lost]).values_list("status", flat=True)
    assert list(statuses) == [IterationStatus.QUEUED] * 3
