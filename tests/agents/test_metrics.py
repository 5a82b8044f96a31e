"""Metrics: hand-worked small cases for every metric, and a loop-based reference check."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.backtest import metrics as m

# Returns used by several hand cases: mean 0.005, deviations (.005, -.015, .015, -.005),
# squared deviations sum to 5e-4, so sd (ddof=1) = sqrt(5e-4 / 3); only -0.01 is downside.
R4 = [0.01, -0.01, 0.02, 0.0]


def _phi(z):
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


# --- hand-computed cases ------------------------------------------------------------------


def test_metric_keys_are_the_documented_ones():
    assert m.METRIC_KEYS == (
        "total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar", "win_rate", "num_trades",
        "profit_factor", "expectancy", "exposure", "avg_trade", "best_trade", "worst_trade", "buy_hold_return", "psr",
    )


def test_total_return():
    assert m.total_return(np.array([100.0, 110.0, 99.0])) == pytest.approx(-0.01)
    assert m.total_return(np.array([100.0])) == 0.0


def test_cagr_uses_bars_per_year():
    equity = np.array([100.0, 110.0, 121.0])  # two periods, +21% in all
    assert m.cagr(equity, 2.0) == pytest.approx(0.21)  # one year
    assert m.cagr(equity, 1.0) == pytest.approx(0.10)  # two years: 1.1 ** 2 = 1.21
    assert m.cagr(np.array([100.0, 50.0, 0.0]), 1.0) == -1.0
    assert m.cagr(np.array([100.0]), 252.0) == 0.0


def test_cagr_of_a_tiny_window_is_capped_not_infinite():
    value = m.cagr(np.array([100.0, 1e6]), 1e6)  # 10,000x in a millionth of a year
    assert value == m.METRIC_CAP


def test_sharpe_hand_case():
    expected = 0.005 / math.sqrt(0.0005 / 3) * math.sqrt(252)  # = 6.1482
    assert m.sharpe_ratio(R4, 252) == pytest.approx(expected)
    assert expected == pytest.approx(6.14817, abs=1e-4)


def test_sharpe_is_zero_without_dispersion():
    assert m.sharpe_ratio([0.001] * 10, 252) == 0.0
    assert m.sharpe_ratio([0.0] * 10, 252) == 0.0
    assert m.sharpe_ratio([0.01], 252) == 0.0


def test_sortino_hand_case():
    # Downside deviation = sqrt((0 + 0.01^2 + 0 + 0) / 4) = 0.005; mean 0.005 -> 1 per bar.
    assert m.sortino_ratio(R4, 252) == pytest.approx(math.sqrt(252))
    assert m.sortino_ratio([0.01, 0.02], 252) == 0.0  # no downside: 0 by the documented rule


def test_max_drawdown_hand_case():
    # Peaks 120 then 130: falls of 1 - 90/120 = 25% and 1 - 104/130 = 20%.
    assert m.max_drawdown(np.array([100.0, 120.0, 90.0, 130.0, 104.0])) == pytest.approx(0.25)
    assert m.max_drawdown(np.array([100.0, 101.0, 102.0])) == 0.0
    assert m.max_drawdown(np.array([100.0, 0.0])) == pytest.approx(1.0)


def test_calmar_hand_case():
    assert m.calmar_ratio(0.10, 0.25) == pytest.approx(0.4)
    assert m.calmar_ratio(0.10, 0.0) == 0.0


def test_win_rate_counts_only_positive_pnl():
    assert m.win_rate([10.0, -5.0, 0.0, 3.0]) == 0.5
    assert m.win_rate([]) == 0.0


def test_profit_factor_hand_case_and_cap():
    assert m.profit_factor([10.0, -5.0, 0.0, 3.0]) == pytest.approx(13 / 5)
    assert m.profit_factor([10.0, 3.0]) == m.PROFIT_FACTOR_CAP == 100.0
    assert m.profit_factor([-1.0, -2.0]) == 0.0
    assert m.profit_factor([]) == 0.0
    assert m.profit_factor([1000.0, -1.0]) == 100.0  # the cap also bounds huge ratios


def test_expectancy_and_trade_return_stats():
    q = [0.1, -0.05, 0.02]
    assert m.expectancy(q) == pytest.approx(0.07 / 3)
    avg, best, worst = m.trade_return_stats(q)
    assert (avg, best, worst) == (pytest.approx(0.07 / 3), 0.1, -0.05)
    assert m.trade_return_stats([]) == (0.0, 0.0, 0.0)
    assert m.expectancy([]) == 0.0


def test_exposure():
    assert m.exposure(np.array([0.0, 1.0, 1.0, 0.0, -0.5])) == pytest.approx(3 / 5)
    assert m.exposure(np.array([])) == 0.0


def test_buy_hold_from_first_tradable_open_to_last_close():
    close = np.array([10.0, 11.0, 12.0])
    open_ = np.array([10.0, 10.5, 11.5])
    assert m.buy_hold_return(close, open_) == pytest.approx(12 / 10.5 - 1)
    assert m.buy_hold_return(close) == pytest.approx(0.2)
    assert m.buy_hold_return(close[:1], open_[:1]) == 0.0


def test_psr_hand_case_symmetric():
    # SR = 0.005 / sqrt(5e-4/3), SR^2 = 0.15; m2 = 5e-4/4, m3 = 0 (deviations symmetric),
    # m4 = (2 * 0.005^4 + 2 * 0.015^4) / 4 = 2.5625e-8 -> kurtosis 2.5625e-8 / 1.25e-4^2 = 1.64.
    var = 1 - 0 + (1.64 - 1) / 4 * 0.15  # = 1.024
    z = math.sqrt(0.15) * math.sqrt(4 - 1) / math.sqrt(var)
    assert m.probabilistic_sharpe_ratio(R4) == pytest.approx(_phi(z))
    assert _phi(z) == pytest.approx(0.7463, abs=1e-4)  # Phi(0.6629) from a normal table


def test_psr_hand_case_skewed():
    # One +3% bar in four: a Bernoulli(1/4) scaled by 0.03, so mean 0.0075, sd (ddof=1) = 0.015,
    # SR = 0.5, skewness (1 - 2p)/sqrt(p(1-p)) and kurtosis (1 - 3p(1-p))/(p(1-p)) with p = 1/4.
    skew = 0.5 / math.sqrt(0.1875)
    kurt = (1 - 3 * 0.1875) / 0.1875
    z = 0.5 * math.sqrt(3) / math.sqrt(1 - skew * 0.5 + (kurt - 1) / 4 * 0.25)
    assert m.probabilistic_sharpe_ratio([0.03, 0.0, 0.0, 0.0]) == pytest.approx(_phi(z))
    assert _phi(z) == pytest.approx(0.8883, abs=1e-4)


def test_psr_degenerate_cases_are_zero():
    assert m.probabilistic_sharpe_ratio([0.01, 0.02]) == 0.0  # fewer than 3 returns
    assert m.probabilistic_sharpe_ratio([0.0] * 50) == 0.0  # never traded


def test_normal_cdf():
    assert m.normal_cdf(0.0) == 0.5
    assert m.normal_cdf(1.959964) == pytest.approx(0.975, abs=1e-6)
    assert m.normal_cdf(-1.0) == pytest.approx(0.158655, abs=1e-6)


def test_compute_metrics_hand_case():
    equity = np.array([100.0, 101.0, 99.99, 101.9898, 101.9898])  # returns R4 exactly
    returns = np.array([0.0, *R4])  # engine layout: a leading placeholder
    out = m.compute_metrics(equity, returns, np.array([0, 1, 1, 1, 0.0]), [0.0199], [1.9898],
                            np.array([1.0, 2.0, 3.0, 4.0, 5.0]), 252.0, np.array([1.0, 2.5, 3.0, 4.0, 5.0]))
    assert tuple(out) == m.METRIC_KEYS
    assert out["total_return"] == pytest.approx(0.019898)
    assert out["sharpe"] == pytest.approx(0.005 / math.sqrt(0.0005 / 3) * math.sqrt(252))
    assert out["sortino"] == pytest.approx(math.sqrt(252))
    assert out["max_drawdown"] == pytest.approx(1 - 99.99 / 101)
    assert out["cagr"] == pytest.approx(1.019898 ** (252 / 4) - 1)
    assert out["calmar"] == pytest.approx(out["cagr"] / (1 - 99.99 / 101))
    assert out["exposure"] == pytest.approx(0.6)
    assert out["num_trades"] == 1.0
    assert out["win_rate"] == 1.0
    assert out["profit_factor"] == 100.0
    assert out["expectancy"] == out["avg_trade"] == out["best_trade"] == out["worst_trade"] == pytest.approx(0.0199)
    assert out["buy_hold_return"] == pytest.approx(5 / 2.5 - 1)
    # The same with the N - 1 returns and no placeholder.
    assert m.compute_metrics(equity, np.array(R4), np.zeros(5), [], [], equity, 252.0)["sharpe"] == out["sharpe"]


def test_compute_metrics_rejects_misaligned_returns():
    with pytest.raises(ValueError, match="returns"):
        m.compute_metrics(np.ones(5), np.zeros(3), np.zeros(5), [], [], np.ones(5), 252.0)


def test_compute_metrics_empty_window():
    out = m.compute_metrics(np.array([]), np.array([]), np.array([]), [], [], np.array([]), 252.0)
    assert out == dict.fromkeys(m.METRIC_KEYS, 0.0)


# --- reference check: straightforward loop implementations --------------------------------


def ref_sharpe(r, k):
    t = len(r)
    mean = sum(r) / t
    var = sum((x - mean) ** 2 for x in r) / (t - 1)
    return mean / math.sqrt(var) * math.sqrt(k)


def ref_sortino(r, k):
    mean = sum(r) / len(r)
    dd = math.sqrt(sum(min(x, 0.0) ** 2 for x in r) / len(r))
    return mean / dd * math.sqrt(k)


def ref_max_drawdown(equity):
    peak, worst = equity[0], 0.0
    for e in equity:
        peak = max(peak, e)
        worst = max(worst, (peak - e) / peak)
    return worst


def ref_psr(r):
    t = len(r)
    mean = sum(r) / t
    sd = math.sqrt(sum((x - mean) ** 2 for x in r) / (t - 1))
    sr = mean / sd
    m2 = sum((x - mean) ** 2 for x in r) / t
    m3 = sum((x - mean) ** 3 for x in r) / t
    m4 = sum((x - mean) ** 4 for x in r) / t
    skew, kurt = m3 / m2**1.5, m4 / m2**2
    z = sr * math.sqrt(t - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    return _phi(z)


@pytest.mark.parametrize("seed", range(8))
def test_metrics_match_loop_reference_on_random_series(seed):
    rng = np.random.default_rng(seed)
    r = rng.standard_t(df=4, size=300) * 0.01 + 0.0004 * seed
    equity = 1000.0 * np.cumprod(np.r_[1.0, 1.0 + r])
    assert m.sharpe_ratio(r, 252) == pytest.approx(ref_sharpe(list(r), 252), rel=1e-9)
    assert m.sortino_ratio(r, 252) == pytest.approx(ref_sortino(list(r), 252), rel=1e-9)
    assert m.max_drawdown(equity) == pytest.approx(ref_max_drawdown(list(equity)), rel=1e-9)
    assert m.probabilistic_sharpe_ratio(r) == pytest.approx(ref_psr(list(r)), rel=1e-9, abs=1e-12)
    out = m.compute_metrics(equity, np.r_[0.0, r], np.ones(301), [], [], equity, 252.0)
    assert out["sharpe"] == pytest.approx(ref_sharpe(list(r), 252), rel=1e-9)
    assert out["psr"] == pytest.approx(ref_psr(list(r)), rel=1e-9, abs=1e-12)


def test_long_series_match_the_reference_and_the_single_metric_functions():
    # Longer than the chunk the dot products are cut into (BLAS would go multi-threaded).
    rng = np.random.default_rng(11)
    r = rng.normal(0.0003, 0.01, 20_001)
    equity = 50.0 * np.cumprod(np.r_[1.0, 1.0 + r])
    out = m.compute_metrics(equity, np.r_[0.0, r], np.ones(len(equity)), [], [], equity, 252.0)
    assert out["sharpe"] == pytest.approx(ref_sharpe(list(r), 252), rel=1e-9) == m.sharpe_ratio(r, 252)
    assert out["sortino"] == pytest.approx(ref_sortino(list(r), 252), rel=1e-9) == m.sortino_ratio(r, 252)
    assert out["psr"] == pytest.approx(ref_psr(list(r)), rel=1e-9) == m.probabilistic_sharpe_ratio(r)
    assert out["max_drawdown"] == pytest.approx(ref_max_drawdown(list(equity)), rel=1e-9) == m.max_drawdown(equity)
    assert out["cagr"] == m.cagr(equity, 252.0)
    assert out["total_return"] == m.total_return(equity)


returns_lists = st.lists(st.floats(-0.2, 0.2, allow_nan=False).map(lambda x: round(x, 6)), min_size=3, max_size=60)


@settings(max_examples=150, deadline=None)
@given(returns_lists)
def test_metrics_match_reference_property(r):
    equity = [100.0]
    for x in r:
        equity.append(equity[-1] * (1 + x))
    t = len(r)
    mean = sum(r) / t
    spread = math.sqrt(sum((x - mean) ** 2 for x in r) / (t - 1))
    if spread > 1e-9:
        assert m.sharpe_ratio(r, 12) == pytest.approx(ref_sharpe(r, 12), rel=1e-7, abs=1e-9)
        assert m.probabilistic_sharpe_ratio(r) == pytest.approx(ref_psr(r), rel=1e-7, abs=1e-9)
    if any(x < 0 for x in r):
        assert m.sortino_ratio(r, 12) == pytest.approx(ref_sortino(r, 12), rel=1e-7, abs=1e-9)
    assert m.max_drawdown(np.array(equity)) == pytest.approx(ref_max_drawdown(equity), rel=1e-9, abs=1e-12)
    out = m.compute_metrics(np.array(equity), np.array(r), np.ones(t + 1), r, r, np.array(equity), 12.0)
    json.dumps(out, allow_nan=False)
    assert 0.0 <= out["psr"] <= 1.0
