"""The lab learns: seeded Optuna iterations with manual approval improve the validation objective."""

import pytest

from agents.market.importer import import_bars_csv
from agents.market.samples import get_sample_dataset
from agents.models import IterationTrigger, RefinementStatus
from agents.services import decisions, learning
from tests.factories import UserFactory, make_agent

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_twenty_seeded_iterations_improve_an_sma_agent_on_spx():
    spx = import_bars_csv(get_sample_dataset("SPX").path, symbol="SPX", interval="1d").instrument
    user = UserFactory()
    agent = make_agent(owner=user, instrument=spx, template="sma_crossover", candidates_per_iteration=8,
                       random_seed=7)
    initial = None
    for _ in range(20):
        iteration, _ = learning.iteration_run_now(agent, trigger=IterationTrigger.MANUAL)
        assert iteration.status == "succeeded", iteration.error
        initial = iteration.score if initial is None else initial
        best = iteration.refinements.order_by("-score").first()
        if best.score > iteration.score:
            decisions.refinement_approve(best, actor=user, reason="best candidate beats current")
            decisions.refinements_apply(agent, actor=user)
            agent.refresh_from_db()
    final, _ = learning.iteration_run_now(agent, trigger=IterationTrigger.MANUAL)
    assert agent.current_version.number > 1
    assert final.score > initial
    assert agent.refinements.filter(status=RefinementStatus.APPLIED).count() == agent.current_version.number - 1
