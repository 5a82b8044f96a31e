"""The incremental read of an agent's trials equals a full scan (issue 13: N and V at a cost that does
not grow with history)."""

from collections import OrderedDict

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents.evaluation import trial_history
from agents.evaluation.trial_history import add_distinct, agent_history, agent_trials
from agents.evaluation.trials import population
from agents.models import IterationStatus, LearningIteration, Refinement, StrategyVersion
from agents.refiners.base import CandidateCollector, TriedParams, params_key, schema_key
from agents.strategies.registry import get_template
from tests.factories import make_agent

pytestmark = pytest.mark.django_db


def _store_iteration(agent, rng, pool, status=IterationStatus.SUCCEEDED):
    """One iteration as the lab stores it: its evaluated version and a few candidates, drawn from
    a small pool of parameter sets so that sets repeat; some Sharpe ratios unknown."""
    number = agent.iterations.count() + 1
    version = StrategyVersion.objects.create(agent=agent, number=number + 1, params=pool[rng.integers(len(pool))],
                                             origin="manual")

    def sharpe():
        return None if rng.random() < 0.2 else float(rng.normal(0, 0.03))

    iteration = LearningIteration.objects.create(
        agent=agent, number=number, status=status, version=version, score=float(rng.normal()),
        selection_score=None if rng.random() < 0.1 else float(rng.normal()), selection_sharpe=sharpe())
    Refinement.objects.bulk_create([
        Refinement(iteration=iteration, agent=agent, proposed_params=pool[rng.integers(len(pool))],
                   source="optuna", score=float(rng.normal()), selection_sharpe=sharpe())
        for _ in range(int(rng.integers(0, 5)))
    ])


def _full_scan(agent, template):
    trials = agent_trials(agent)
    return trials, add_distinct({}, schema_key(template), trials)


def test_the_incremental_read_equals_the_full_scan_on_a_random_history():
    template = get_template("sma_crossover")
    agent = make_agent()
    rng = np.random.default_rng(5)
    pool = [{"fast": int(f), "slow": int(f + g)} for f, g in zip(rng.integers(2, 30, 25), rng.integers(5, 60, 25),
                                                                   strict=True)]
    pool.append({"fast": 3})  # a stored set missing a param (read as its default), as from before a change
    for _batch in range(12):
        for _ in range(int(rng.integers(0, 4))):
            _store_iteration(agent, rng, pool, IterationStatus.FAILED if rng.random() < 0.15 else
                             IterationStatus.SUCCEEDED)
        trials, by_key, scores = agent_history(agent, template)
        full_trials, full_by_key = _full_scan(agent, template)
        assert trials == full_trials
        assert list(by_key.items()) == list(full_by_key.items())  # the same sets, values and order
        # What the refiners' duplicate check derives from the whole history by itself.
        history = [TriedParams(t.params, t.score) for t in full_trials]
        assert scores == CandidateCollector(template, {}, history, 1)._evaluated
        assert population(by_key, 1000) == population(full_by_key, 1000)
    assert len(full_trials) > 40 and len(full_by_key) < len(full_trials)  # the history did repeat sets


def test_the_order_is_by_iteration_its_version_first():
    template = get_template("sma_crossover")
    agent = make_agent()
    rng = np.random.default_rng(1)
    for _ in range(3):
        _store_iteration(agent, rng, [{"fast": 5, "slow": 20}, {"fast": 8, "slow": 40}])
    expected = []
    for iteration in LearningIteration.objects.filter(agent=agent).order_by("id"):
        expected.append(iteration.version.params)
        expected += [r.proposed_params for r in iteration.refinements.order_by("id")]
    assert [t.params for t in agent_history(agent, template)[0]] == expected


def test_each_read_costs_two_queries_and_returns_copies():
    template = get_template("sma_crossover")
    agent = make_agent()
    rng = np.random.default_rng(2)
    _store_iteration(agent, rng, [{"fast": 5, "slow": 20}])
    agent_history(agent, template)
    with CaptureQueriesContext(connection) as queries:
        trials, by_key, _scores = agent_history(agent, template)
    assert len(queries) == 2
    assert all('"id" >' in q["sql"] for q in queries)  # only the rows stored since the last read
    trials.append("mine")
    by_key.clear()
    again = agent_history(agent, template)
    assert "mine" not in again[0] and again[1]


def test_another_agent_under_a_reused_id_starts_afresh():
    template = get_template("sma_crossover")
    agent = make_agent()
    _store_iteration(agent, np.random.default_rng(3), [{"fast": 5, "slow": 20}])
    agent_history(agent, template)
    entry = trial_history._histories[agent.pk]
    entry.trials.append("stale")
    agent.created_at = agent.created_at.replace(year=agent.created_at.year - 1)
    assert "stale" not in agent_history(agent, template)[0]


def test_rows_added_to_an_old_iteration_are_read_as_a_full_scan_would():
    """As bench/throughput.py pads a history: refinements added later to an iteration already read."""
    template = get_template("sma_crossover")
    agent = make_agent()
    rng = np.random.default_rng(4)
    pool = [{"fast": 5, "slow": 20}, {"fast": 8, "slow": 40}, {"fast": 3, "slow": 9}]
    for _ in range(3):
        _store_iteration(agent, rng, pool)
    agent_history(agent, template)
    first = LearningIteration.objects.filter(agent=agent).order_by("id").first()
    Refinement.objects.create(iteration=first, agent=agent, proposed_params={"fast": 4, "slow": 50}, source="optuna",
                              score=0.5, selection_sharpe=0.01)
    trials, by_key, _scores = agent_history(agent, template)
    full_trials, full_by_key = _full_scan(agent, template)
    assert trials == full_trials and list(by_key.items()) == list(full_by_key.items())


def test_schema_key_is_params_key_of_the_cleaned_set_for_full_partial_and_other_mappings():
    template = get_template("sma_crossover")
    key = schema_key(template)
    full = template.validate({"fast": 7, "slow": 90, "stop_loss": 0.1 + 0.2, "take_profit": 1.0})
    partial = {"fast": 7, "slow": 90}  # a set stored before the stops existed: read as the defaults
    for stored in (full, partial, OrderedDict(full), {**full, "gone": 1}):
        assert key(stored) == params_key(template.validate({k: v for k, v in stored.items() if k != "gone"}))
