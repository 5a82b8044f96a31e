"""The evaluation protocol: folds and the sealed window, and the promise that the search never sees the exam."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.backtest.engine import run_backtest
from agents.evaluation.backtests import evaluate_sealed, evaluate_selection, selection_score
from agents.evaluation.protocol import EvaluationError, split_protocol
from agents.market.bars import Bars
from agents.strategies.registry import all_templates, get_template


class _Agent:
    fee_bps = 1.0
    slippage_bps = 2.0
    initial_capital = 100_000.0
    objective = "sharpe"


def _bars(n, seed):
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0002, 0.012, n)))
    open_ = np.concatenate([[100.0], close[:-1]]) * (1 + rng.normal(0, 0.003, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.006, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.006, n)))
    stamps = np.datetime64("2010-01-04") + np.arange(n).astype("timedelta64[D]")
    return Bars.from_columns(stamps.astype("datetime64[ns]"), open_, high, low, close)


def test_folds_are_contiguous_equal_and_older_than_the_sealed_window():
    protocol = split_protocol(1003, test_fraction=0.2, n_folds=5)
    assert protocol.test == slice(803, 1003)  # floor(1003 * 0.2) = 200 newest bars
    lengths = {f.stop - f.start for f in protocol.folds}
    assert lengths == {160}  # 803 // 5; the 3 oldest bars only warm up
    assert protocol.folds[0].start == 3 and protocol.folds[-1].stop == protocol.test.start
    assert all(a.stop == b.start for a, b in zip(protocol.folds, protocol.folds[1:], strict=False))
    assert protocol.selection_bars == 800


def test_too_few_bars_names_the_test_window_and_the_folds():
    with pytest.raises(EvaluationError) as exc:
        split_protocol(120, test_fraction=0.1, n_folds=10)
    message = str(exc.value)
    assert "12 sealed test bars" in message and "folds of 10 bars" in message


def test_selection_score_is_the_mean_less_one_standard_error():
    scores = [1.2, -0.4, 0.7, 0.1, 0.9]
    mean = sum(scores) / 5
    sd = math.sqrt(sum((s - mean) ** 2 for s in scores) / 4)
    assert selection_score(scores) == pytest.approx(mean - sd / math.sqrt(5), rel=1e-12)
    # Same mean, steadier folds: ranked higher.
    assert selection_score([0.5] * 5) > selection_score(scores)


def test_each_fold_is_the_engine_on_its_own_slice_starting_flat():
    bars = _bars(900, 3)
    template = get_template("sma_crossover")
    params = template.validate({"fast": 5, "slow": 20})
    protocol = split_protocol(len(bars), test_fraction=0.2, n_folds=4)
    ev = evaluate_selection(_Agent, template, params, bars, protocol, 252)
    target = template.target_positions(bars, params)
    for fold, metrics in zip(protocol.folds, ev.fold_metrics, strict=True):
        alone = run_backtest(bars.slice(fold.start, fold.stop), target[fold], fee_bps=1.0, slippage_bps=2.0,
                             bars_per_year=252)
        assert metrics == alone.metrics
    assert len(ev.returns) == sum(f.stop - f.start - 1 for f in protocol.folds)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_search_never_sees_the_sealed_window_and_nothing_sees_the_future(data):
    """Changing the bars of the sealed window changes no selection figure, and changing the bars
    after a fold changes nothing of that fold or the ones before it."""
    template = data.draw(st.sampled_from([t.key for t in all_templates()]), label="template")
    template = get_template(template)
    seed = data.draw(st.integers(0, 10_000), label="seed")
    bars = _bars(700, seed)
    protocol = split_protocol(len(bars), test_fraction=0.2, n_folds=data.draw(st.integers(2, 6), label="folds"))
    params = template.validate({})
    before = evaluate_selection(_Agent, template, params, bars, protocol, 252)

    rng = np.random.default_rng(seed + 1)
    cut = data.draw(st.integers(protocol.test.start, len(bars) - 1), label="cut")
    shocked = _shock(bars, cut, rng)
    after = evaluate_selection(_Agent, template, params, shocked, protocol, 252)
    assert after.fold_metrics == before.fold_metrics and after.score == before.score
    assert np.array_equal(after.returns, before.returns)

    k = data.draw(st.integers(0, len(protocol.folds) - 1), label="fold")
    fold = protocol.folds[k]
    later = evaluate_selection(_Agent, template, params, _shock(bars, fold.stop, rng), protocol, 252)
    assert later.fold_metrics[: k + 1] == before.fold_metrics[: k + 1]

    # The sealed window does read its own bars (a gate's exam is not a copy of the folds).
    sealed = evaluate_sealed(_Agent, template, params, bars, protocol, 252)
    moved = evaluate_sealed(_Agent, template, params, _shock(bars, protocol.test.start, rng), protocol, 252)
    assert sealed.metrics["buy_hold_return"] != moved.metrics["buy_hold_return"]


def _shock(bars, start, rng):
    """The same bars with every bar from `start` on replaced by another random path."""
    n = len(bars) - start
    if n <= 0:
        return bars
    factor = np.exp(np.cumsum(rng.normal(0, 0.03, n)))
    cols = [c.copy() for c in (bars.open, bars.high, bars.low, bars.close)]
    for col in cols:
        col[start:] = col[start:] * factor
    return Bars.from_columns(bars.timestamps, *cols)
