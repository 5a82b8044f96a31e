"""agents.services.decisions: every decision on a refinement goes through one conditional write."""

import pytest
from prometheus_client import REGISTRY

from agents.models import ActivityLog, Refinement, RefinementStatus
from agents.services import decisions, learning
from core.errors import Conflict
from tests.factories import make_agent

pytestmark = pytest.mark.django_db


@pytest.fixture
def candidates():
    agent = make_agent(candidates_per_iteration=3)
    iteration, _ = learning.iteration_run_now(agent, trigger="manual")
    return list(Refinement.objects.filter(iteration=iteration).order_by("id"))


def _snapshot(refinement):
    return Refinement.objects.filter(pk=refinement.pk).values(
        "status", "decided_by", "decision_reason", "decided_at", "criteria_results").get()


@pytest.mark.parametrize("decide", [
    lambda r, user: decisions.refinement_approve(r, actor=user),
    lambda r, user: decisions.refinement_reject(r, actor=user, reason="late"),
    lambda r, user: decisions.refinement_supersede(r, by=r, reason="late", criteria_results=[]),
])
def test_a_decision_taken_meanwhile_is_a_conflict_and_is_kept(candidates, decide):
    stale = candidates[0]  # loaded while pending
    Refinement.objects.filter(pk=stale.pk).update(status=RefinementStatus.APPLIED, decision_reason="applied first")
    before = _snapshot(stale)
    logged = ActivityLog.objects.count()
    with pytest.raises(Conflict) as caught:
        decide(stale, stale.agent.owner)
    assert caught.value.errors == {"status": "the refinement was decided by someone else meanwhile"}
    assert _snapshot(stale) == before and ActivityLog.objects.count() == logged


def test_superseding_records_the_verdict_the_line_and_the_metric(candidates, django_capture_on_commit_callbacks):
    loser, winner = candidates[0], candidates[1]
    rows = [{"criterion": "min_sharpe_ratio", "required": 0.5, "actual": 0.9, "passed": True}]
    labels = {"decision": "superseded", "mode": "auto"}
    before = REGISTRY.get_sample_value("lab_refinement_decisions_total", labels) or 0
    with django_capture_on_commit_callbacks(execute=True):
        decisions.refinement_supersede(loser, by=winner, reason="lost to a better one", criteria_results=rows)
    stored = Refinement.objects.get(pk=loser.pk)
    assert (stored.status, stored.decided_automatically, stored.decided_by, stored.decision_reason,
            stored.criteria_results) == (RefinementStatus.SUPERSEDED, True, None, "lost to a better one", rows)
    line = ActivityLog.objects.get(event="refinement_superseded")
    assert line.actor_label == "auto-approval"
    assert line.details == {"refinement": loser.pk, "reason": "lost to a better one", "criteria": rows,
                            "superseded_by": winner.pk}
    assert REGISTRY.get_sample_value("lab_refinement_decisions_total", labels) - before == 1
