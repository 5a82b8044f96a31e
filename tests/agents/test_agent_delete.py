"""Deleting an agent while its iteration runs (issue 17): allowed, and the worker ends quietly.

DELETE answers 204 at once and removes the agent with everything it owns. The iteration still
running on a worker finds out when it records its outcome (agents.services.agent_lock): one INFO
line, nothing written, no exception. The real-worker version is tests/reliability/test_agent_deleted.py.
"""

import logging
import threading

import pytest
from rest_framework.test import APIClient

from agents.models import ActivityLog, LearningIteration, Refinement, TradingAgent
from agents.services import agents as agent_service
from agents.services import dispatch, learning
from agents.services.agent_lock import agent_locked
from tests.factories import make_agent

pytestmark = pytest.mark.django_db(transaction=True)

GONE = "was deleted while the iteration ran"


def delete_over_api(agent):
    client = APIClient()
    client.force_authenticate(agent.owner)
    resp = client.delete(f"/api/learning-agents/{agent.pk}")
    assert resp.status_code == 204, resp.content


@pytest.fixture
def deleted_mid_run(monkeypatch):
    """Make the slow part of the next iteration delete its agent (over the API) and then succeed or fail."""
    real = learning._execute

    def arrange(outcome):
        def execute(iteration):
            result = real(iteration)
            delete_over_api(iteration.agent)
            if outcome == "fail":
                raise RuntimeError("the refiner broke as well")
            return result

        monkeypatch.setattr(learning, "_execute", execute)

    return arrange


@pytest.mark.parametrize("outcome", ["succeed", "fail"])
def test_an_iteration_whose_agent_is_deleted_ends_quietly(deleted_mid_run, outcome, caplog):
    agent = make_agent()
    iteration, _ = dispatch.iteration_queue(agent, trigger="api")
    deleted_mid_run(outcome)
    with caplog.at_level(logging.INFO, logger="agents.services.learning"):
        learning.iteration_run(iteration.pk)  # no IntegrityError, no other exception
    gone = [r for r in caplog.records if GONE in r.getMessage()]
    assert len(gone) == 1 and gone[0].levelno == logging.INFO
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not TradingAgent.objects.filter(pk=agent.pk).exists()
    assert not LearningIteration.objects.filter(agent_id=agent.pk).exists()
    assert not Refinement.objects.filter(agent_id=agent.pk).exists()
    assert not ActivityLog.objects.filter(agent_id=agent.pk).exists()


def test_a_queued_iteration_of_a_deleted_agent_does_nothing():
    agent = make_agent()
    iteration, _ = dispatch.iteration_queue(agent, trigger="api")
    delete_over_api(agent)
    assert learning.iteration_run(iteration.pk) is None


def test_the_delete_waits_for_an_outcome_being_written_and_removes_it_too():
    # The race the row lock closes on PostgreSQL: the outcome's transaction inserts refinements the
    # delete has not collected; without the lock the delete fails at commit on the foreign key.
    agent = make_agent()
    iteration, _ = dispatch.iteration_queue(agent, trigger="api")
    locked, release, errors = threading.Event(), threading.Event(), []

    def outcome_writer():
        try:
            with agent_locked(agent.pk):
                Refinement.objects.create(iteration=iteration, agent=agent, proposed_params={"fast": 5},
                                          source="optuna", score=0.1)
                locked.set()
                release.wait(5)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            from django.db import connection

            connection.close()

    writer = threading.Thread(target=outcome_writer)
    writer.start()
    assert locked.wait(10)
    threading.Timer(0.5, release.set).start()
    agent_service.agent_delete(TradingAgent.objects.get(pk=agent.pk), actor=agent.owner)
    writer.join(10)
    assert not errors
    assert not TradingAgent.objects.filter(pk=agent.pk).exists()
    assert not Refinement.objects.filter(agent_id=agent.pk).exists()


def test_deleting_twice_at_once_is_not_an_error():
    agent = make_agent()
    copy = TradingAgent.objects.get(pk=agent.pk)
    agent_service.agent_delete(agent, actor=agent.owner)
    agent_service.agent_delete(copy, actor=copy.owner)
    assert not TradingAgent.objects.filter(pk=agent.pk).exists()
