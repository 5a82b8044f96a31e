"""The agent's search as a whole: the DSR's trial population and PBO over distinct strategies."""

import numpy as np
import pytest

from agents.evaluation.statistics import sharpe_stats
from agents.evaluation.trial_history import Trial
from agents.evaluation.trials import distinct_strategies, dsr_of, population


def _pop(sharpes, t):
    return population({i: Trial({}, None, s) for i, s in enumerate(sharpes)}, t)


def test_v_is_the_trials_dispersion_when_it_looks_like_luck():
    pop = _pop([0.01, -0.02, 0.015, 0.0], t=2000)
    assert pop.cross_variance == pytest.approx(np.var([0.01, -0.02, 0.015, 0.0], ddof=1))
    assert pop.variance == pop.cross_variance < pop.null_variance == pytest.approx(1 / 1999)


def test_v_is_capped_at_the_null_variance_when_the_trials_differ_in_skill():
    pop = _pop([0.2, -0.1, 0.15, -0.05], t=500)
    assert pop.cross_variance > 1 / 499
    assert pop.variance == pytest.approx(1 / 499)


def test_trials_from_before_the_protocol_count_in_n_but_not_in_v():
    pop = population({1: Trial({}, 0.4, None), 2: Trial({}, None, 0.01), 3: Trial({}, None, 0.03)}, 1000)
    assert (pop.n_trials, pop.n_with_sharpe) == (3, 2)
    assert pop.cross_variance == pytest.approx(np.var([0.01, 0.03], ddof=1))


def test_the_best_of_many_unskilled_trials_is_rarely_significant():
    """False positives of the gate's DSR on pure noise: the best of N independent null trials passes
    DSR >= 0.95 in about 5% of searches or fewer (correlated trials would make it rarer still)."""
    rng = np.random.default_rng(21)
    n_trials, t, searches, passed = 30, 500, 300, 0
    for _ in range(searches):
        returns = rng.normal(0.0, 0.01, (t, n_trials))
        stats = [sharpe_stats(returns[:, j]) for j in range(n_trials)]
        pop = _pop([s.sr for s in stats], t)
        best = max(stats, key=lambda s: s.sr)
        passed += dsr_of(best, pop) >= 0.95
    assert passed / searches <= 0.08


def test_a_real_edge_among_many_trials_is_found():
    """A per-bar Sharpe of 0.15 (2.4 a year) over 1,500 bars among 40 trials, a dozen of them poor (real
    differences that widen the trials' dispersion): found in most searches."""
    rng = np.random.default_rng(3)
    t, found, searches = 1500, 0, 40
    for _ in range(searches):
        returns = rng.normal(0.0, 0.01, (t, 40))
        returns[:, 7] += 0.0015
        returns[:, 8:20] -= 0.0008
        stats = [sharpe_stats(returns[:, j]) for j in range(40)]
        pop = _pop([s.sr for s in stats], t)
        assert pop.cross_variance > pop.null_variance
        found += dsr_of(stats[7], pop) >= 0.95
    assert found / searches >= 0.8


def test_near_duplicate_strategies_enter_pbo_once_by_their_best_member():
    rng = np.random.default_rng(8)
    base = rng.normal(0.0005, 0.01, 800)
    twin = base + rng.normal(0, 0.001, 800)  # correlation ~0.995
    other = rng.normal(0.0, 0.01, 800)
    kept = distinct_strategies(np.column_stack([twin, other, base]))
    assert kept.shape[1] == 2
    better = base if base.mean() / base.std() > twin.mean() / twin.std() else twin
    assert any(np.array_equal(kept[:, j], better) for j in range(2))
    assert any(np.array_equal(kept[:, j], other) for j in range(2))
