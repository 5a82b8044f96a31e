"""The paper engine alone (no database) against run_backtest, including the edge cases."""

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.backtest.engine import run_backtest
from agents.market.bars import Bars
from graduation.trading import engine
from graduation.trading.broker import SimulatedBroker

T0 = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def make_bars(close, spread=0.01):
    close = np.asarray(close, dtype=np.float64)
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) * (1 + spread)
    low = np.minimum(open_, close) * (1 - spread)
    stamps = np.array([np.datetime64("2020-01-01") + np.timedelta64(i, "D") for i in range(len(close))],
                      dtype="datetime64[ns]")
    return Bars.from_columns(stamps, open_, high, low, close)


def run_paper(bars, target, costs, capital=1000.0):
    state = engine.State(cash=capital, equity=capital, peak_equity=capital, pending_target=float(target[0]))
    broker = SimulatedBroker("X", fee_bps=costs.fee_bps, slippage_bps=costs.slippage_bps)
    equity, positions, trades = [capital], [0.0], []
    for t in range(1, len(bars)):
        bar = engine.Bar(T0 + dt.timedelta(days=t), float(bars.open[t]), float(bars.high[t]), float(bars.low[t]),
                         float(bars.close[t]))
        result = engine.step(state, bar, float(target[t]), costs, broker)
        equity.append(result.point.equity)
        positions.append(result.point.position)
        trades.extend(result.trades)
        if state.ruined:
            break
    if not state.ruined:  # a ruined account is frozen; the backtest trades nothing there either
        assert broker.positions()["X"] == pytest.approx(state.units, abs=1e-9)
    return state, np.array(equity), positions, trades


def test_a_short_that_more_than_doubles_ruins_the_account_as_in_the_backtest():
    close = [100, 100, 130, 170, 230, 260, 250]
    bars = make_bars(close, spread=0.0)
    target = np.array([-1.0] * len(close))
    costs = engine.Costs(fee_bps=10, slippage_bps=10)
    state, equity, _positions, trades = run_paper(bars, target, costs)
    result = run_backtest(bars, target, fee_bps=10, slippage_bps=10, initial_capital=1000.0)
    assert state.ruined and state.equity == 0 and state.max_drawdown == 1.0
    assert trades[-1].exit_reason == "ruin"
    np.testing.assert_allclose(equity, result.equity[: len(equity)], rtol=1e-9, atol=1e-9)
    assert result.trades[-1].exit_reason == "ruin"
    assert trades[-1].pnl == pytest.approx(result.trades[-1].pnl, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.floats(-0.08, 0.08), min_size=5, max_size=60),
    weights=st.lists(st.sampled_from([-1.0, -0.5, 0.0, 0.3, 1.0]), min_size=60, max_size=60),
    fee=st.sampled_from([0.0, 2.0, 30.0]),
    slip=st.sampled_from([0.0, 5.0]),
    stop=st.sampled_from([0.0, 0.03]),
    take=st.sampled_from([0.0, 0.05]),
)
def test_any_path_matches_the_backtest(steps, weights, fee, slip, stop, take):
    close = 100 * np.exp(np.cumsum([0.0, *steps]))
    bars = make_bars(close)
    target = np.array(weights[: len(close)])
    costs = engine.Costs(fee, slip, stop, take)
    state, equity, positions, trades = run_paper(bars, target, costs)
    result = run_backtest(bars, target, fee_bps=fee, slippage_bps=slip, stop_loss=stop, take_profit=take,
                          initial_capital=1000.0)
    np.testing.assert_allclose(equity, result.equity, rtol=1e-9, atol=1e-9)
    assert positions == result.positions.tolist()
    closed = [t for t in result.trades if t.exit_reason != "end_of_data"]
    assert [(t.side, t.exit_reason, t.bars_held) for t in trades] == [
        (t.side, t.exit_reason, t.bars_held) for t in closed]
    for p, b in zip(trades, closed, strict=True):
        assert p.entry_price == pytest.approx(b.entry_price, rel=1e-12)
        assert p.exit_price == pytest.approx(b.exit_price, rel=1e-12)
        assert p.pnl == pytest.approx(b.pnl, rel=1e-9, abs=1e-9)
    mark = engine.open_trade_mark(state)
    open_ = [t for t in result.trades if t.exit_reason == "end_of_data"]
    assert (mark is None) == (not open_)
    if mark:
        assert mark[0] == pytest.approx(open_[0].pnl, rel=1e-9, abs=1e-9)
