"""Deleting an agent while its iteration runs on a real worker (issue 17).

Before: DELETE answered 204 and the worker's task then raised IntegrityError twice (recording the
outcome, then recording the failure), and Celery logged an unexpected exception with a traceback.
Now the task ends normally with one INFO line, and nothing of the agent is left.
"""

import pytest
from rest_framework.test import APIClient

from agents.models import IterationStatus, LearningIteration, Refinement, TradingAgent
from agents.services import dispatch
from tests.factories import make_agent
from tests.processes import celery_process, wait_for
from tests.reliability.helpers import WORKER_ARGS, claude_message, received_task_ids, sma, status_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker, pytest.mark.slow]

TASK = "agents.tasks.run_iteration_task"


def test_delete_while_the_iteration_runs_ends_the_task_quietly(fresh_broker, scripted_llm, tmp_path):
    llm = scripted_llm({"status": 200, "body": claude_message([sma(10, 30), sma(12, 40)]), "delay": 60})
    agent = make_agent(refiner="claude", candidates_per_iteration=2)
    log = tmp_path / "worker.log"
    with celery_process("worker", log, *WORKER_ARGS, "-c", "1"):
        iteration, _ = dispatch.iteration_start(agent, trigger="api")
        wait_for(lambda: llm.arrivals, timeout=60, message="the iteration to be waiting on the LLM")
        assert status_of(iteration.pk) == IterationStatus.RUNNING

        client = APIClient()
        client.force_authenticate(agent.owner)
        resp = client.delete(f"/api/learning-agents/{agent.pk}/")
        assert resp.status_code == 204
        llm.released.set()  # the LLM answers now; the worker goes on to record the outcome

        [task_id] = received_task_ids(log, TASK)
        wait_for(lambda: f"{TASK}[{task_id}] succeeded" in log.read_text(), timeout=60,
                 message="the task to end")
        text = log.read_text()
    assert "was deleted while the iteration ran" in text
    for sign_of_a_crash in ("IntegrityError", "Traceback", "raised unexpected", "ERROR"):
        assert sign_of_a_crash not in text, text[-3000:]
    assert not TradingAgent.objects.filter(pk=agent.pk).exists()
    assert not LearningIteration.objects.filter(agent_id=agent.pk).exists()
    assert not Refinement.objects.filter(agent_id=agent.pk).exists()
