"""Real Celery worker and beat processes: they log JSON lines through the same configuration
(with the iteration's ids), record their heartbeats, and the worker's counters reach the web's
/metrics through the multi-process directory."""

import json

import pytest

from agents.models import IterationStatus, LearningIteration
from agents.services import dispatch
from alerts.models import Heartbeat
from tests.factories import make_agent, make_claude_agent_without_key
from tests.observability.helpers import scrape
from tests.processes import celery_process, purge_filesystem_broker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker, pytest.mark.slow]


def status_of(iteration_id):
    return LearningIteration.objects.filter(pk=iteration_id).values_list("status", flat=True).first()


def json_lines(path):
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_worker_and_beat_log_json_record_heartbeats_and_count_iterations(tmp_path, client, settings):
    purge_filesystem_broker()
    good, bad = make_agent(), make_claude_agent_without_key(settings)  # bad's iteration fails
    before = scrape(client)
    worker_log, beat_log = tmp_path / "worker.log", tmp_path / "beat.log"
    with celery_process("worker", worker_log, "-Q", "iterations,default", "-c", "1", "-n", "obs@testhost",
                        LAB_LOG_FORMAT="json", ANTHROPIC_API_KEY=""):
        wait_for(lambda: Heartbeat.objects.filter(component="worker:obs@testhost").exists(),
                 message="the worker's ready heartbeat")
        ok, _ = dispatch.iteration_start(good, trigger="api")
        failed, _ = dispatch.iteration_start(bad, trigger="api")
        wait_for(lambda: status_of(ok.pk) == IterationStatus.SUCCEEDED, message="the iteration to succeed")
        wait_for(lambda: status_of(failed.pk) == IterationStatus.FAILED, message="the iteration to fail")
        with celery_process("beat", beat_log, "--schedule", str(tmp_path / "beat-schedule"), LAB_LOG_FORMAT="json"):
            wait_for(lambda: Heartbeat.objects.filter(component="beat").exists(), message="beat's heartbeat")
            response = client.get("/health")
            assert response.status_code == 200, response.json()
        after = scrape(client)

    lines = json_lines(worker_log)
    assert lines, worker_log.read_text()[-2000:]
    [failure] = [e for e in lines if e["logger"] == "agents.services.learning" and "failed" in e["message"]]
    assert (failure["agent_id"], failure["iteration_id"]) == (str(bad.pk), failed.pk)
    assert failure["task_name"] == "agents.tasks.run_iteration_task" and failure["task_id"]
    assert any(e["logger"] == "celery.apps.worker" for e in lines)  # Celery's own lines, same format
    assert json_lines(beat_log), beat_log.read_text()[-2000:]
    assert Heartbeat.objects.get(component="worker:obs@testhost").details["stopped"] is True  # warm shutdown

    for status in ("succeeded", "failed"):
        labels = {"status": status, "trigger": "api"}
        moved = after.value("lab_iterations_finished_total", **labels) - before.value(
            "lab_iterations_finished_total", **labels)
        assert moved == 1, status
