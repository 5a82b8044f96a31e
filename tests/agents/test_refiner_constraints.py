"""A template's cross-parameter rules never stop the Optuna refiner (issue 13 §2).

The failure this guards against: TPE concentrated where the good trials were, on the edge of a
rule (donchian's exit_window <= entry_window), every sample it drew broke the rule, and the
iteration failed with "no new valid parameter set". Here the objective rewards exactly that edge:
the closer each rule's two parameters, the higher the score, so TPE keeps sampling where about half
of its draws are refused. 200 iterations per template on that objective, each seeded with all the
previous ones as the learning service does, must all yield a full batch of valid, new candidates.
"""

import datetime as dt
import math

import numpy as np
import pytest

from agents.models import IterationStatus, IterationTrigger, Refinement
from agents.refiners.base import RefinerContext, TriedParams, params_key
from agents.refiners.optuna_refiner import OptunaRefiner, bounded_history
from agents.services import learning
from agents.strategies.registry import all_templates
from tests.factories import InstrumentFactory, make_agent, random_walk_bars

ITERATIONS = 200
CANDIDATES = 2


def edge_score(template):
    """Higher the closer each rule's two parameters are (relative to the first one's range)."""
    pairs = [names for _message, _predicate, names in template.constraints]

    def score(params):
        total = -0.1 * params["stop_loss"]
        for a, b in pairs:
            spec = template.spec(a)
            total -= abs(params[a] - params[b]) / (spec.max - spec.min)
        return total

    return score


@pytest.mark.parametrize("template", all_templates(), ids=lambda t: t.key)
def test_200_iterations_on_the_edge_of_the_rules_never_fail(template):
    score = edge_score(template)
    current = template.defaults()
    history = [TriedParams(current, score(current))]
    seen = {params_key(current)}
    for iteration in range(ITERATIONS):
        ctx = RefinerContext(template=template, current_params=current, fold_metrics=[],
                             selection_score=score(current), objective="sharpe", history=history, recent_trades=[],
                             n_candidates=CANDIDATES, seed=iteration)
        result = OptunaRefiner().propose(ctx)  # a RefinerError here is the failure
        assert len(result.candidates) == CANDIDATES, iteration
        for candidate in result.candidates:
            assert template.validate(candidate.params) == candidate.params
            assert params_key(candidate.params) not in seen, (iteration, candidate.params)
            seen.add(params_key(candidate.params))
            history.append(TriedParams(candidate.params, score(candidate.params)))
        current = max(history, key=lambda tried: tried.score).params
    if template.constraints:
        # The search did go to the edge: the best set found is within a few steps of it.
        best = max(history, key=lambda tried: tried.score)
        assert best.score > -0.1, best


def test_bounded_history_keeps_the_best_the_recent_and_a_stride():
    entries = [({"i": i}, float(i % 97)) for i in range(1000)]
    chosen = bounded_history(entries, limit=64, best=24, recent=24)
    assert len(chosen) == 64 and chosen == sorted(set(chosen))
    best = sorted(range(1000), key=lambda i: -entries[i][1])[:24]
    assert set(best) <= set(chosen)
    assert set(range(976, 1000)) <= set(chosen)
    rest = [i for i in chosen if i not in best and i < 976]
    assert len(rest) == 16 and rest[0] < 100 and rest[-1] > 800  # spread over the older trials
    assert bounded_history(entries[:50], limit=64) == list(range(50))


def test_failed_trials_are_never_among_the_best_kept():
    entries = [({"i": i}, None if i % 2 else float(i)) for i in range(200)]
    chosen = bounded_history(entries, limit=40, best=10, recent=10)
    assert all(entries[i][1] is not None for i in sorted(chosen, key=lambda i: -(entries[i][1] or -math.inf))[:10])
    assert {198, 196, 194} <= set(chosen)


@pytest.mark.django_db
@pytest.mark.slow
def test_donchian_on_a_trending_series_keeps_learning():
    """The realistic case, through the learning service: a Donchian agent on a strongly trending
    series runs 25 iterations, 8 candidates each, without one failing. (The old refiner passed this
    seed too; the edge objective above is what reproduced its failure, at iterations 138 and 176.)"""
    instrument = random_walk_bars(InstrumentFactory(), n=900, seed=3, drift=0.002, vol=0.01,
                                  start=dt.datetime(2012, 1, 2, tzinfo=dt.UTC))
    agent = make_agent(instrument=instrument, template="donchian_breakout", candidates_per_iteration=8)
    errors = []
    for _ in range(25):
        iteration, _ = learning.iteration_run_now(agent, trigger=IterationTrigger.MANUAL)
        if iteration.status != IterationStatus.SUCCEEDED:
            errors.append((iteration.number, iteration.error))
        agent.refresh_from_db()
    assert errors == []
    assert Refinement.objects.filter(agent=agent).count() == 25 * 8
    assert np.isfinite(agent.iterations.latest("number").score)
