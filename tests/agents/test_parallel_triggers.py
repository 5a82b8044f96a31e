"""N triggers at once for one agent: the database lets exactly one iteration in."""

import threading

import pytest
from django.db import connection

from agents.models import LearningIteration
from agents.services import dispatch, learning
from tests.factories import make_agent

pytestmark = pytest.mark.django_db(transaction=True)


def test_parallel_triggers_queue_exactly_one_iteration():
    agent = make_agent()
    results, errors = [], []
    barrier = threading.Barrier(8)

    def trigger(i):
        try:
            barrier.wait()
            results.append(dispatch.iteration_queue(agent, trigger="api" if i % 2 else "schedule"))
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=trigger, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert LearningIteration.objects.filter(agent=agent).count() == 1
    assert sum(created for _it, created in results) == 1
    assert len({it.pk for it, _c in results}) == 1
    only = LearningIteration.objects.get(agent=agent)
    learning.iteration_run(only.pk)
    learning.iteration_run(only.pk)
    only.refresh_from_db()
    assert only.status == "succeeded"
