"""The Optuna refiner: seeded TPE over the template's schema, continued from the history."""

import math
from dataclasses import dataclass

import numpy as np
import pytest

from agents.refiners.base import RefinerContext, RefinerError, TriedParams
from agents.refiners.optuna_refiner import OptunaRefiner, search_space
from agents.strategies.base import ParamSpec, StrategyTemplate


def make_template(*, fast_max=50, slow_min=5):
    return StrategyTemplate(
        key="sma_cross",
        name="SMA crossover",
        description="Long when the fast moving average is above the slow one.",
        own_params=(
            ParamSpec("fast", "int", 10, 2, fast_max, "Fast window (bars)."),
            ParamSpec("slow", "int", 30, slow_min, 200, "Slow window (bars)."),
            ParamSpec("band", "float", 0.01, 0.0, 0.1, "Dead band around the cross."),
        ),
        signal=lambda bars, params: np.zeros(len(bars)),
        constraints=(("must be less than slow", lambda p: p["fast"] < p["slow"], ("fast", "slow")),),
    )


@dataclass(frozen=True)
class OwnParamsOnly(StrategyTemplate):
    """A template without the common params, to get a small finite search space."""

    @property
    def params(self):
        return self.own_params


def make_ctx(template, *, history=(), n=5, seed=7, current=None, validation=None):
    return RefinerContext(
        template=template,
        current_params=dict(current if current is not None else template.defaults()),
        fold_metrics=[{"sharpe": 0.8, "total_return": 0.12}, {"sharpe": 0.2, "total_return": 0.01}],
        selection_score=(validation if validation is not None else {"sharpe": 0.4}).get("sharpe"),
        objective="sharpe",
        history=list(history),
        recent_trades=[],
        n_candidates=n,
        seed=seed,
        instrument="BTC-USD",
    )


def random_history(template, n, seed, score):
    """n valid param sets drawn uniformly, scored by `score(params)`."""
    rng = np.random.default_rng(seed)
    history = []
    while len(history) < n:
        params = {
            "fast": int(rng.integers(2, 51)),
            "slow": int(rng.integers(5, 201)),
            "band": float(rng.uniform(0, 0.1)),
            "stop_loss": float(rng.uniform(0, 0.5)),
            "take_profit": float(rng.uniform(0, 5)),
            "long_only": bool(rng.integers(0, 2)),
        }
        if params["fast"] < params["slow"]:
            history.append(TriedParams(params=params, score=score(params)))
    return history


def test_search_space_follows_the_param_specs():
    distributions, fixed = search_space(make_template())
    assert (distributions["fast"].low, distributions["fast"].high) == (2, 50)
    assert (distributions["band"].low, distributions["band"].high) == (0.0, 0.1)
    assert distributions["long_only"].choices == (True, False)
    assert fixed == []


def test_same_context_gives_the_same_candidates():
    template = make_template()
    history = random_history(template, 25, seed=1, score=lambda p: -abs(p["fast"] - 20))
    first = OptunaRefiner().propose(make_ctx(template, history=history, seed=11))
    second = OptunaRefiner().propose(make_ctx(template, history=history, seed=11))
    other_seed = OptunaRefiner().propose(make_ctx(template, history=history, seed=12))

    assert [c.params for c in first.candidates] == [c.params for c in second.candidates]
    assert [c.params for c in first.candidates] != [c.params for c in other_seed.candidates]


def test_candidates_are_valid_within_bounds_distinct_and_new():
    template = make_template()
    current = template.defaults()
    history = random_history(template, 15, seed=2, score=lambda p: p["band"])
    result = OptunaRefiner().propose(make_ctx(template, history=history, n=8, current=current))

    assert result.refiner == "optuna"
    assert result.rejected == []
    assert len(result.candidates) == 8
    keys = set()
    for candidate in result.candidates:
        assert candidate.source == "optuna"
        assert template.validate(candidate.params) == candidate.params
        assert set(candidate.params) == {p.name for p in template.params}
        for spec in template.params:
            value = candidate.params[spec.name]
            if spec.type == "bool":
                assert isinstance(value, bool)
            else:
                assert spec.min <= value <= spec.max
                assert isinstance(value, int if spec.type == "int" else float)
        assert candidate.params != current
        keys.add(tuple(sorted(candidate.params.items())))
    assert len(keys) == 8


def test_rationale_names_the_sample_the_trial_count_and_the_best_score():
    template = make_template()
    history = [
        TriedParams({"fast": 5, "slow": 40}, 1.25),
        TriedParams({"fast": 8, "slow": 60}, None),
    ]
    result = OptunaRefiner().propose(make_ctx(template, history=history, n=2))
    # 2 history entries + the current params scored by their selection score.
    assert result.candidates[0].rationale.startswith(
        "TPE sample #1 after 3 evaluated trials (best so far: sharpe=1.25)"
    )
    assert result.candidates[1].rationale.startswith("TPE sample #2 ")


def _mean_distance_to_optimum(candidates):
    return float(np.mean([abs(c.params["fast"] - 40) / 48 + abs(c.params["band"] - 0.08) / 0.1 for c in candidates]))


def test_history_seeding_concentrates_proposals_where_scores_were_high():
    """Scores peak at fast=40, band=0.08: seeded TPE proposes near there, unseeded does not."""
    template = make_template()

    def score(p):
        return -(abs(p["fast"] - 40) / 48) - abs(p["band"] - 0.08) / 0.1

    history = random_history(template, 60, seed=3, score=score)
    seeded, unseeded = [], []
    for seed in range(5):
        seeded += OptunaRefiner().propose(make_ctx(template, history=history, n=6, seed=seed)).candidates
        # Without history TPE is still in its random start-up phase: the baseline.
        unseeded += OptunaRefiner().propose(make_ctx(template, n=6, seed=seed, validation={})).candidates

    seeded_distance = _mean_distance_to_optimum(seeded)
    random_distance = _mean_distance_to_optimum(unseeded)
    assert seeded_distance < 0.6 * random_distance, (seeded_distance, random_distance)
    # And the proposals are better than the history's average, by the history's own score.
    assert np.mean([score(c.params) for c in seeded]) > np.mean([t.score for t in history])


def test_cross_parameter_constraint_still_yields_n_valid_candidates():
    # fast and slow share most of their range, so about half the raw samples break fast < slow.
    template = make_template(fast_max=200, slow_min=2)
    for history in ([], random_history(template, 20, seed=4, score=lambda p: p["slow"] - p["fast"])):
        result = OptunaRefiner().propose(make_ctx(template, history=history, n=10, seed=5))
        assert len(result.candidates) == 10
        assert all(c.params["fast"] < c.params["slow"] for c in result.candidates)


def _tiny_template():
    return OwnParamsOnly(
        key="tiny",
        name="Tiny",
        description="Six possible parameter sets.",
        own_params=(ParamSpec("a", "int", 0, 0, 2), ParamSpec("flag", "bool", True)),
        signal=lambda bars, params: np.zeros(len(bars)),
    )


def test_never_reproposes_the_current_params_or_an_evaluated_set():
    template = _tiny_template()
    current = {"a": 0, "flag": True}
    history = [
        TriedParams({"a": 1, "flag": True}, 0.5),
        TriedParams({"a": 2, "flag": True}, 0.1),
        TriedParams({"a": 0, "flag": False}, None),
    ]
    result = OptunaRefiner().propose(make_ctx(template, history=history, n=5, current=current))

    # Only two of the six sets are new: fewer candidates than asked, never a repeat.
    assert sorted((c.params["a"], c.params["flag"]) for c in result.candidates) == [(1, False), (2, False)]


def test_exhausted_search_space_is_a_refiner_error():
    template = _tiny_template()
    history = [TriedParams({"a": a, "flag": f}, 0.1) for a in range(3) for f in (True, False)]
    with pytest.raises(RefinerError, match="no new valid parameter set"):
        OptunaRefiner().propose(make_ctx(template, history=history, n=2, current={"a": 0, "flag": True}))


def test_unusable_history_entries_are_skipped_not_fatal():
    template = make_template()
    history = [
        TriedParams({"fast": 5, "slow": 40}, math.nan),  # NaN score: replayed as failed
        TriedParams({"fast": 500, "slow": 40}, 2.0),  # out of today's bounds
        TriedParams({"fast": 5, "slow": 40, "leverage": 3}, 2.0),  # param no longer exists
        TriedParams({"fast": 6, "slow": 50}, 0.7),
    ]
    result = OptunaRefiner().propose(make_ctx(template, history=history, n=4))
    assert len(result.candidates) == 4
    assert "after 3 evaluated trials (best so far: sharpe=0.7)" in result.candidates[0].rationale


def test_iterations_continue_the_search_and_converge():
    """20 iterations of 3 candidates, each seeded with everything evaluated before (as the
    learning service does): the best set found approaches the optimum of a known objective."""
    template = make_template()

    def score(p):
        return -(abs(p["fast"] - 40) / 48) - abs(p["band"] - 0.08) / 0.1 - abs(p["stop_loss"] - 0.1)

    current = template.defaults()
    history = [TriedParams(current, score(current))]
    bests = []
    for iteration in range(20):
        ctx = make_ctx(template, history=history, n=3, seed=100 + iteration, current=current)
        for candidate in OptunaRefiner().propose(ctx).candidates:
            history.append(TriedParams(candidate.params, score(candidate.params)))
        best = max(history, key=lambda tried: tried.score)
        current = best.params
        bests.append(best.score)

    assert len(history) == 1 + 20 * 3
    assert bests[-1] > bests[0]
    assert bests[-1] > -0.2, bests  # the optimum is 0; the defaults score about -1.4
