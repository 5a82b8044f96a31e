"""Iterations run by a real Celery worker process over the real broker (filesystem or Redis)."""

import signal

import pytest

from agents.models import IterationStatus, LearningIteration
from agents.services import dispatch
from tests.factories import make_agent
from tests.fake_anthropic import FakeAnthropic, message, sma_candidates
from tests.processes import celery_process, purge_filesystem_broker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker, pytest.mark.slow]


def status_of(iteration_id):
    return LearningIteration.objects.filter(pk=iteration_id).values_list("status", flat=True).first()


@pytest.fixture
def worker_log(tmp_path):
    purge_filesystem_broker()
    return tmp_path / "worker.log"


def test_a_queued_iteration_is_run_by_the_worker(worker_log):
    agent = make_agent()
    with celery_process("worker", worker_log, "-Q", "iterations,default", "-c", "1"):
        iteration, created = dispatch.iteration_start(agent, trigger="api")
        assert created
        wait_for(lambda: status_of(iteration.pk) == IterationStatus.SUCCEEDED, message="iteration to succeed")
    iteration.refresh_from_db()
    assert iteration.refinements.count() == agent.candidates_per_iteration
    # A redelivered message for a finished iteration does nothing.
    from agents.tasks import run_iteration_task

    run_iteration_task(iteration.pk)
    assert iteration.refinements.count() == agent.candidates_per_iteration


def test_sigterm_mid_iteration_lets_it_finish(worker_log, settings):
    settings.ANTHROPIC_API_KEY = "sk-ant-test-0000"
    slow_answer = (200, message(sma_candidates([(10, 30), (12, 40)])), 4.0)  # the LLM takes 4 s
    with FakeAnthropic(slow_answer) as fake:
        settings.ANTHROPIC_BASE_URL = fake.url
        agent = make_agent(refiner="claude", candidates_per_iteration=2)
        with celery_process("worker", worker_log, "-Q", "iterations,default", "-c", "1") as worker:
            iteration, _ = dispatch.iteration_start(agent, trigger="api")
            wait_for(lambda: status_of(iteration.pk) == IterationStatus.RUNNING, message="iteration to start")
            worker.send_signal(signal.SIGTERM)  # warm shutdown
            worker.wait(timeout=60)
    assert status_of(iteration.pk) == IterationStatus.SUCCEEDED
    assert not LearningIteration.objects.filter(status=IterationStatus.RUNNING).exists()
    assert "Warm shutdown" in worker_log.read_text()
