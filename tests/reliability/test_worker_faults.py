"""A worker killed or stopped in the middle of an iteration, on the real worker and broker.

What the lab does (the README's operations section says the same):

- SIGKILL of the whole worker. On Redis the unacked message comes back after the visibility
  timeout (2 x LAB_ITERATION_TIME_LIMIT) and is delivered to the next worker. kombu's
  filesystem transport moves a message out of the queue folder when a worker fetches it and
  keeps the unacked copy only in that worker's memory: a killed worker takes it along, nothing
  is redelivered. Either way the iteration's row says `running` with nobody running it.
- SIGKILL of a pool process only (the OOM killer's choice): the worker's main process sees
  WorkerLostError (after Celery's worker_lost_wait, 10 s) and says so (task_failure): the
  iteration is failed then ("worker lost: the process running the iteration died"), and its
  message acknowledged, not put back (run_iteration_task has reject_on_worker_lost off).
- A redelivered message never runs an iteration twice: the claim is a conditional update from
  `queued`, and a `running` row is left alone (its worker may be alive). Where nobody reports
  the loss (the whole worker killed), the reaper fails the iteration once it has been running
  longer than the hard time limit plus a grace period (nothing can run that long), with the
  error "worker lost"; the ERROR alert follows. So a crashed iteration ends exactly once, as
  failed; it is not retried by itself, so a poison iteration (one that always kills its
  process) cannot crash-loop the workers.
- SIGTERM: warm shutdown. The worker stops taking messages at once (agents/tasks.py: Celery's
  blocking loop for the filesystem transport would otherwise keep fetching while it waits),
  finishes what it runs, and exits; the next worker picks up what is still queued.
"""

import datetime as dt
import os
import signal
import time
from contextlib import ExitStack

import pytest

from agents.models import IterationStatus, LearningIteration, Refinement, Trade
from agents.services import continuous, dispatch, reaper
from alerts.models import AgentAlert, AlertType
from tests.factories import make_agent
from tests.processes import celery_process, wait_for
from tests.reliability.helpers import (
    WORKER_ARGS,
    child_pids,
    claude_message,
    nothing_running,
    on_redis,
    queued_messages,
    received_task_ids,
    sma,
    status_of,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker, pytest.mark.slow]

TASK = "agents.tasks.run_iteration_task"
# Short limits for the worker processes, so that Redis redelivers within the test: its
# visibility timeout is twice the hard limit (config/settings/celery.py).
SOFT_LIMIT, HARD_LIMIT = 8, 10
LIMITS = {"LAB_ITERATION_SOFT_TIME_LIMIT": SOFT_LIMIT, "LAB_ITERATION_TIME_LIMIT": HARD_LIMIT}
CANDIDATES = [sma(10, 30), sma(12, 40)]


@pytest.fixture
def limits(settings):
    # The reaper runs in this process: same limits as the workers.
    settings.LAB_ITERATION_SOFT_TIME_LIMIT, settings.LAB_ITERATION_TIME_LIMIT = SOFT_LIMIT, HARD_LIMIT
    return settings


def claude_agent(**kwargs):
    return make_agent(refiner="claude", candidates_per_iteration=2, **kwargs)


def reap_at(iteration, seconds_after_start):
    """The reaper as beat would run it that long after the iteration started (no subprocess clock to move)."""
    now = iteration.started_at + dt.timedelta(seconds=seconds_after_start)
    return reaper.iterations_reap_stuck(now=now), reaper.iterations_requeue_lost(now=now)


def test_sigkill_of_the_pool_process_fails_the_iteration_at_once(limits, fresh_broker, scripted_llm, tmp_path):
    llm = scripted_llm({"status": 200, "body": claude_message(CANDIDATES), "delay": 60})
    agent = claude_agent()
    log = tmp_path / "worker.log"
    with celery_process("worker", log, *WORKER_ARGS, "-c", "1", **LIMITS) as worker:
        iteration, _ = dispatch.iteration_start(agent, trigger="api")
        wait_for(lambda: llm.arrivals, timeout=60, message="the iteration to be waiting on the LLM")
        [child] = child_pids(worker.pid)
        killed_at = time.monotonic()
        os.kill(child, signal.SIGKILL)
        # The worker notices (WorkerLostError, after worker_lost_wait) and fails it: no reaper needed.
        wait_for(lambda: status_of(iteration.pk) == IterationStatus.FAILED, timeout=30,
                 message="the iteration to be failed by its worker")
        failed_after = time.monotonic() - killed_at
        row = LearningIteration.objects.get(pk=iteration.pk)
        assert "worker lost: the process running the iteration died" in row.error
        assert "SIGKILL" in row.error
        assert not Refinement.objects.filter(iteration=row).exists()
        assert nothing_running()
        wait_for(lambda: AgentAlert.objects.filter(agent=agent, alert_type=AlertType.ERROR,
                                                   fingerprint="iteration_failed").exists(),
                 timeout=10, message="the ERROR alert")
        assert agent.activity.filter(event="iteration_reaped").count() == 1
        # Once: the message was acknowledged, not redelivered, and the reaper finds nothing later.
        assert len(received_task_ids(log, TASK)) == 1
        assert reap_at(row, HARD_LIMIT + reaper.GRACE_SECONDS + 1) == (0, 0)

        # The agent learns again at once, on the same worker.
        llm.steps = [{"status": 200, "body": claude_message(CANDIDATES)}]
        again, created = dispatch.iteration_start(agent, trigger="api")
        assert created
        wait_for(lambda: status_of(again.pk) == IterationStatus.SUCCEEDED, timeout=60, message="the next iteration")
    assert len(llm.arrivals) == 2
    print(f"\n[figures] SIGKILL pool process: iteration failed {failed_after:.1f}s after the kill "
          "(Celery's worker_lost_wait is 10 s)")


def test_sigkill_of_the_worker_mid_iteration_ends_it_exactly_once(limits, fresh_broker, scripted_llm, tmp_path):
    llm = scripted_llm({"status": 200, "body": claude_message(CANDIDATES), "delay": 60})  # the LLM "thinks" 60 s
    agent = claude_agent()
    first_log, second_log = tmp_path / "worker-1.log", tmp_path / "worker-2.log"
    with ExitStack() as workers:
        worker = workers.enter_context(celery_process("worker", first_log, *WORKER_ARGS, "-c", "1", **LIMITS))
        iteration, _ = dispatch.iteration_start(agent, trigger="api")
        wait_for(lambda: llm.arrivals, timeout=60, message="the iteration to be waiting on the LLM")
        assert status_of(iteration.pk) == IterationStatus.RUNNING
        [task_id] = received_task_ids(first_log, TASK)
        killed_at = time.monotonic()
        os.kill(worker.pid, signal.SIGKILL)  # its pool processes die with it (PR_SET_PDEATHSIG)
        worker.wait(timeout=10)
        if on_redis():
            # Redis keeps the unacked message and hands it to the next worker once the
            # visibility timeout (2 x hard limit) has passed since it was delivered.
            started = LearningIteration.objects.get(pk=iteration.pk).started_at.timestamp()
            time.sleep(max(0.0, started + 2 * HARD_LIMIT + 1 - time.time()))
        else:
            # The filesystem transport lost it with the worker: nothing left to redeliver.
            assert queued_messages() == 0
        workers.enter_context(celery_process("worker", second_log, *WORKER_ARGS, "-c", "1", **LIMITS))
        if on_redis():
            wait_for(lambda: f"{TASK}[{task_id}] succeeded" in second_log.read_text(), timeout=60,
                     message="the redelivered message to reach the new worker")
            assert received_task_ids(second_log, TASK) == [task_id]
        redelivered_after = time.monotonic() - killed_at

        # Redelivered or not, nobody ran it twice: it is still `running`, with nothing written.
        iteration.refresh_from_db()
        assert iteration.status == IterationStatus.RUNNING
        assert not Refinement.objects.filter(iteration=iteration).exists()
        assert len(llm.arrivals) == 1  # the redelivered message did not call the LLM again

        # The reaper (beat, every 2 minutes): within the hard limit it may still be working ...
        assert reap_at(iteration, HARD_LIMIT) == (0, 0)
        # ... past hard limit + grace nothing can be running it: failed, once.
        assert reap_at(iteration, HARD_LIMIT + reaper.GRACE_SECONDS + 1) == (1, 0)
        assert reap_at(iteration, HARD_LIMIT + reaper.GRACE_SECONDS + 600) == (0, 0)

        [row] = LearningIteration.objects.filter(agent=agent)
        assert row.status == IterationStatus.FAILED and "worker lost" in row.error
        assert not Refinement.objects.filter(iteration=row).exists()
        assert not Trade.objects.filter(iteration=row).exists()
        assert nothing_running()
        assert continuous.continuous_status(agent)["iterations_today"] == 1  # the daily cap counts it once
        alerts = AgentAlert.objects.filter(agent=agent, alert_type=AlertType.ERROR, fingerprint="iteration_failed")
        assert alerts.count() == 1
        assert agent.activity.filter(event="iteration_reaped").count() == 1

        # The agent learns again, on the worker still standing.
        llm.steps = [{"status": 200, "body": claude_message(CANDIDATES)}]
        again, created = dispatch.iteration_start(agent, trigger="api")
        assert created
        wait_for(lambda: status_of(again.pk) == IterationStatus.SUCCEEDED, timeout=60, message="the next iteration")
    assert Refinement.objects.filter(iteration=again).count() == 2
    what = f"redelivered {redelivered_after:.1f}s after the kill" if on_redis() else \
        "lost with the worker (filesystem transport)"
    print(f"\n[figures] SIGKILL worker: message {what}; iteration failed by the reaper once past "
          f"hard limit + {reaper.GRACE_SECONDS}s (beat runs it every 120s)")


def test_sigterm_finishes_the_running_iteration_and_starts_nothing_new(fresh_broker, scripted_llm, tmp_path):
    llm = scripted_llm({"status": 200, "body": claude_message(CANDIDATES), "delay": 3})
    busy, waiting = claude_agent(), claude_agent()
    log = tmp_path / "worker.log"
    # Two pool processes: one is free, so only the shutdown can keep the second iteration from starting.
    with celery_process("worker", log, *WORKER_ARGS, "-c", "2") as worker:
        first, _ = dispatch.iteration_start(busy, trigger="api")
        wait_for(lambda: llm.arrivals, timeout=60, message="the first iteration to be waiting on the LLM")
        signalled = time.monotonic()
        worker.send_signal(signal.SIGTERM)  # warm shutdown
        wait_for(lambda: "Warm shutdown" in log.read_text() or worker.poll() is not None, timeout=10,
                 message="the worker to begin its warm shutdown")
        second, _ = dispatch.iteration_start(waiting, trigger="api")
        worker.wait(timeout=60)
        shutdown_took = time.monotonic() - signalled

    assert status_of(first.pk) == IterationStatus.SUCCEEDED
    assert Refinement.objects.filter(iteration=first).count() == 2
    second.refresh_from_db()
    assert second.status == IterationStatus.QUEUED and second.started_at is None
    assert len(llm.arrivals) == 1
    assert nothing_running()
    assert queued_messages() == 1  # the second iteration's message waits in the broker

    # The next worker takes it.
    with celery_process("worker", tmp_path / "worker-2.log", *WORKER_ARGS, "-c", "1"):
        wait_for(lambda: status_of(second.pk) == IterationStatus.SUCCEEDED, timeout=60,
                 message="the second iteration on the next worker")
    assert Refinement.objects.filter(iteration=second).count() == 2
    print(f"\n[figures] SIGTERM: warm shutdown finished the running iteration and exited in {shutdown_took:.1f}s")


def test_an_iteration_fetched_as_the_worker_stops_is_handed_back(monkeypatch):
    # The window the SIGTERM test cannot hit on purpose: a message fetched just before the
    # shutdown signal. The task gives it back to the broker instead of starting it.
    from celery.exceptions import Reject

    from agents import tasks

    iteration, _ = dispatch.iteration_queue(make_agent(), trigger="api")
    monkeypatch.setattr(tasks._WORKER_STOPPING, "value", 1)
    with pytest.raises(Reject) as rejected:
        tasks.run_iteration_task(iteration.pk)
    assert rejected.value.requeue is True
    assert status_of(iteration.pk) == IterationStatus.QUEUED


def test_a_cold_shutdown_says_so_in_the_failed_iteration(fresh_broker, scripted_llm, tmp_path):
    # Two Ctrl-Cs (SIGINT, then SIGINT again): Celery's cold shutdown stops the pool processes in the
    # middle of their tasks. The iteration used to fail with "SystemExit: -241".
    llm = scripted_llm({"status": 200, "body": claude_message(CANDIDATES), "delay": 60})
    agent = claude_agent()
    log = tmp_path / "worker.log"
    with celery_process("worker", log, *WORKER_ARGS, "-c", "1") as worker:
        iteration, _ = dispatch.iteration_start(agent, trigger="api")
        wait_for(lambda: llm.arrivals, timeout=60, message="the iteration to be waiting on the LLM")
        worker.send_signal(signal.SIGINT)
        wait_for(lambda: "Warm shutdown" in log.read_text() or worker.poll() is not None, timeout=10,
                 message="the warm shutdown")
        worker.send_signal(signal.SIGINT)
        worker.wait(timeout=30)
    row = LearningIteration.objects.get(pk=iteration.pk)
    assert row.status == IterationStatus.FAILED
    assert row.error == "stopped by a cold shutdown of the worker", row.error
    assert not Refinement.objects.filter(iteration=row).exists()
    assert nothing_running()
