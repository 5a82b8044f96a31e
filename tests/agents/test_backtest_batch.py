"""Batch evaluation: a parameter set scores the same in a batch as alone, on every template.

A batch shares work between its rows (indicators computed once per window length, one kernel
call over a matrix of targets, metrics column-wise); these tests check that nothing leaks from
one row into another: every row of a batch, its trades and its metrics equal the single run of
that row to 1e-12, with and without stops, in any order of the rows. The engine's rules are
checked against an independent per-bar simulator in test_backtest_engine.py.
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.backtest.engine import run_backtest, run_batch
from agents.evaluation.backtests import evaluate_selection, evaluate_selections
from agents.evaluation.protocol import split_protocol
from agents.market.bars import Bars
from agents.strategies.base import ParamValidationError
from agents.strategies.registry import all_templates

TEMPLATES = all_templates()
IDS = [t.key for t in TEMPLATES]
TOL = 1e-12
HYPOTHESIS = settings(max_examples=25, deadline=None, database=None,
                      suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])


def random_bars(size, seed, drift=0.0003, vol=0.015):
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(drift, vol, size)))
    open_ = np.empty(size)
    open_[0] = 100.0
    open_[1:] = close[:-1] * np.exp(rng.normal(0.0, vol / 4, size - 1))
    wick = np.abs(rng.normal(0.0, vol / 2, (2, size)))
    high = np.maximum(open_, close) * (1 + wick[0])
    low = np.minimum(open_, close) * (1 - wick[1])
    stamps = np.datetime64("2010-01-01", "ns") + np.arange(size) * np.timedelta64(1, "D")
    return Bars.from_columns(stamps, open_, high, low, close)


BARS = random_bars(700, seed=3)


def draw_params(draw, template, stops):
    """A valid parameter set of ``template``: own params within their bounds (windows kept short
    enough to trade on 700 bars), long or short, stops on or off."""
    for _ in range(50):
        params = {}
        for spec in template.own_params:
            if spec.type == "int":
                params[spec.name] = draw(st.integers(int(spec.min), int(min(spec.max, 60))))
            elif spec.type == "float":
                params[spec.name] = draw(st.floats(spec.min, spec.max, allow_nan=False))
        params["long_only"] = draw(st.booleans())
        if stops:
            params["stop_loss"] = draw(st.sampled_from([0.0, 0.01, 0.03])) or draw(st.floats(0.0, 0.2))
            params["take_profit"] = draw(st.sampled_from([0.0, 0.02, 0.05])) or draw(st.floats(0.0, 0.5))
        try:
            return template.validate(params)
        except ParamValidationError:
            continue
    return template.validate(template.defaults())


@st.composite
def param_sets(draw, template, stops):
    return [draw_params(draw, template, stops) for _ in range(draw(st.integers(1, 6)))]


def assert_same_run(batch, r, single):
    row = batch.result(r)
    for name in ("equity", "returns", "positions"):
        np.testing.assert_allclose(getattr(row, name), getattr(single, name), rtol=TOL, atol=0, err_msg=name)
    a, b = row.trade_table, single.trade_table
    assert len(a) == len(b)
    for name in ("side", "entry_index", "exit_index", "bars_held", "exit_reason"):
        assert getattr(a, name).tolist() == getattr(b, name).tolist(), name
    for name in ("entry_price", "exit_price", "return_pct", "pnl", "size"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=TOL, atol=0, err_msg=name)
    assert_same_metrics(row.metrics, single.metrics)


def assert_same_metrics(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert math.isclose(a[key], b[key], rel_tol=TOL, abs_tol=TOL), (key, a[key], b[key])


@pytest.mark.parametrize("stops", [False, True], ids=["no-stops", "stops"])
@pytest.mark.parametrize("template", TEMPLATES, ids=IDS)
def test_every_row_of_a_batch_is_its_single_run(template, stops):
    @HYPOTHESIS
    @given(param_sets(template, stops), st.integers(0, 300), st.sampled_from([(0.0, 0.0), (1.0, 2.0), (10.0, 5.0)]))
    def check(params_list, start, costs):
        fee, slip = costs
        targets = template.target_matrix(BARS, params_list)
        window = BARS.slice(start, start + 400)
        kwargs = {"fee_bps": fee, "slippage_bps": slip, "bars_per_year": 252.0, "initial_capital": 50_000.0}
        batch = run_batch(window, targets[:, start : start + 400],
                          stop_loss=[p["stop_loss"] for p in params_list],
                          take_profit=[p["take_profit"] for p in params_list], **kwargs)
        for r, params in enumerate(params_list):
            # The shared indicators give each row exactly its own signal.
            assert targets[r].tolist() == template.target_positions(BARS, params).tolist()
            single = run_backtest(window, targets[r, start : start + 400], stop_loss=params["stop_loss"],
                                  take_profit=params["take_profit"], **kwargs)
            assert_same_run(batch, r, single)

    check()


@pytest.mark.parametrize("template", TEMPLATES, ids=IDS)
def test_selection_batch_equals_each_set_alone_in_any_order(template):
    @HYPOTHESIS
    @given(param_sets(template, stops=True), st.randoms(use_true_random=False))
    def check(params_list, rnd):
        agent = SimpleNamespace(fee_bps=1.0, slippage_bps=2.0, initial_capital=100_000.0, objective="sharpe")
        protocol = split_protocol(len(BARS), test_fraction=0.2, n_folds=5)
        shuffled = params_list[:]
        rnd.shuffle(shuffled)
        batch = evaluate_selections(agent, template, shuffled, BARS, protocol, 252.0)
        for params, ev in zip(shuffled, batch, strict=True):
            alone = evaluate_selection(agent, template, params, BARS, protocol, 252.0)
            assert ev.params == params
            assert math.isclose(ev.score, alone.score, rel_tol=TOL, abs_tol=TOL)
            assert_same_metrics(ev.metrics, alone.metrics)
            for a, b in zip(ev.fold_metrics, alone.fold_metrics, strict=True):
                assert_same_metrics(a, b)
            np.testing.assert_allclose(ev.returns, alone.returns, rtol=TOL, atol=0)
            assert ev.target.tolist() == alone.target.tolist()
            assert [t.to_dict() for t in ev.recent_trades] == [t.to_dict() for t in alone.recent_trades]
            assert (ev.stats.sr, ev.stats.t) == pytest.approx((alone.stats.sr, alone.stats.t), rel=TOL, abs=TOL)

    check()


def test_the_batch_trades_at_all():
    """Guard against the equality tests passing on empty work: the drawn strategies do trade."""
    template = next(t for t in TEMPLATES if t.key == "sma_crossover")
    params = [template.validate({"fast": 5, "slow": 20, "stop_loss": 0.02}), template.validate({"fast": 5, "slow": 30})]
    batch = run_batch(BARS, template.target_matrix(BARS, params), stop_loss=[0.02, 0.0], take_profit=0.0)
    assert batch.counts.min() > 10
    assert "stop_loss" in {t.exit_reason for t in batch.result(0).trades}


def test_shared_indicators_are_read_only_inside_a_batch():
    from agents.strategies import indicators as ind

    with ind.shared():
        mean = ind.sma(BARS.close, 10)
        assert ind.sma(BARS.close, 10) is mean
        with pytest.raises(ValueError, match="read-only"):
            mean[0] = 1.0
    assert ind.sma(BARS.close, 10) is not mean  # outside a batch nothing is cached


# --- non-finite prices ---------------------------------------------------------------------


@pytest.mark.parametrize("field", ["open", "high", "low", "close"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_prices_are_refused_naming_the_field_and_the_rule(field, bad):
    columns = {name: getattr(BARS, name)[:50].copy() for name in ("open", "high", "low", "close")}
    columns[field][17] = bad
    bars = Bars.from_columns(BARS.timestamps[:50], columns["open"], columns["high"], columns["low"],
                             columns["close"])
    # Even flat, where a NaN close used to be reported as ruin (-100%).
    for target in (np.zeros(50), np.ones(50)):
        with pytest.raises(ValueError, match=rf"bars\.{field}: every price must be a finite number.*bar 17"):
            run_backtest(bars, target)
    with pytest.raises(ValueError, match=rf"bars\.{field}"):
        run_batch(bars, np.zeros((3, 50)))


def _window(rng, rows, n, trades_per_row):
    """A metrics window of random curves, with the edge cases the formulas branch on."""
    returns = rng.normal(0.0, 0.01, (rows, n))
    returns[:, 0] = 0.0
    if rows > 1:
        returns[1] = 0.0  # a flat curve: no risk, no drawdown
    if rows > 2:
        returns[2, n // 2 :] = -1.0  # ruin: equity 0 from there
    equity = 100.0 * np.cumprod(1.0 + returns, axis=1)
    positions = rng.choice([0.0, 0.5, 1.0], (rows, n))
    owners = np.sort(rng.integers(0, rows, rows * trades_per_row))
    pnls = rng.normal(0.0, 10.0, len(owners))
    pnls[::5] = 0.0
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    return equity, returns, positions, pnls / 1000.0, pnls, owners, close, close * 0.999


@pytest.mark.parametrize("n", [1, 2, 3, 50, 400])
def test_the_numpy_finishing_gives_the_same_bits_as_the_row_by_row_one(n):
    """Many rows finish elementwise in numpy, a single backtest row by row in Python: the same
    operations in the same order, so every metric is the same float, not merely close."""
    from agents.backtest import metric_formulas, metrics

    rng = np.random.default_rng(n)
    windows = [_window(rng, rows, n, trades) for rows, trades in ((6, 3), (5, 0), (4, 12))]
    many = metrics.compute_metrics_windows(windows, 252.0)
    assert sum(len(w) for w in many) >= metric_formulas.VECTOR_ROWS  # the numpy path
    for window, rows in zip(windows, many, strict=True):
        equity, returns, positions, q, pnls, owners, close, open_ = window
        for r, expected in enumerate(rows):
            mine = owners == r
            alone = metrics.compute_metrics_rows(equity[r : r + 1], returns[r : r + 1], positions[r : r + 1], q[mine],
                                                 pnls[mine], np.zeros(int(mine.sum()), dtype=np.int64), close, 252.0,
                                                 open_)[0]
            assert alone == expected  # exact: dicts of floats compare bit for bit (no NaN in metrics)


def test_warm_up_compiles_every_signature_a_batch_uses():
    """A batch reads cached bar columns and shared indicators (read-only) and fold columns of its
    target matrix (a strided slice): warm_up must have compiled those, or a request would."""
    from agents.backtest import kernel
    from agents.strategies import indicator_kernels
    from agents.strategies import indicators as ind

    kernel.warm_up()
    indicator_kernels.warm_up()
    compiled = {fn: len(fn.signatures) for fn in (kernel.simulate, indicator_kernels.rolling_sum_blocked,
                                                   indicator_kernels.tolerant_sign_into)}
    bars = random_bars(300, seed=4)
    for column in (bars.open, bars.high, bars.low, bars.close):
        column.flags.writeable = False
    targets = np.sign(np.sin(np.arange(2 * len(bars)) / 9.0)).reshape(2, -1)
    with ind.shared():
        ind.tolerant_sign(ind.sma(bars.close, 5) - ind.sma(bars.close, 20), bars.close)
    run_batch(bars.slice(50, 250), np.ascontiguousarray(targets)[:, 50:250])
    assert {fn: len(fn.signatures) for fn in compiled} == compiled


def test_the_heap_policy_applies_on_glibc_and_zero_leaves_the_default():
    import platform

    from config.heap import keep_freed_memory

    assert keep_freed_memory(0) is False
    assert keep_freed_memory(32) is (platform.libc_ver()[0] == "glibc")


def test_a_row_trading_more_than_its_room_runs_again_with_room_for_every_bar():
    """The trades buffer starts with room for a quarter of the bars per row; a row trading every
    other bar overflows it, and the batch must still give every row exactly its single run."""
    bars = random_bars(400, seed=8)
    busy = np.tile([1.0, 0.0], 200)  # a trade every two bars: 200 > 400 // 4
    calm = np.where(np.arange(400) > 100, 1.0, 0.0)
    batch = run_batch(bars, np.vstack([calm, busy, calm]), fee_bps=1.0)
    assert batch.room == 400 and int(batch.counts[1]) > 100
    for r, target in enumerate((calm, busy, calm)):
        alone = run_backtest(bars, target, fee_bps=1.0)
        assert alone.trades == batch.result(r).trades
        assert alone.metrics == batch.metrics[r]
    assert run_batch(bars, np.vstack([calm, calm])).room == 100  # no overflow: the small buffer kept
