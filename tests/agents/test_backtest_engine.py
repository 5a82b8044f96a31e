"""Backtest engine: timing, costs, sizing, long/short, stops, trades, no look-ahead.

Hand cases work the numbers out with plain cash-and-units accounting (fill at open x
(1 +- slippage), fee on notional at the open), not with the engine's closed forms; a
per-bar loop simulator written the same way is the reference for the property tests.
"""

import datetime as dt
import json
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agents.backtest import METRIC_KEYS, run_backtest
from agents.backtest.engine import EXIT_REASONS, TradeRecord
from agents.market.bars import Bars

E0 = 100_000.0


def make_bars(open_, close, high=None, low=None):
    open_ = np.asarray(open_, dtype=float)
    close = np.asarray(close, dtype=float)
    high = np.maximum(open_, close) if high is None else np.asarray(high, dtype=float)
    low = np.minimum(open_, close) if low is None else np.asarray(low, dtype=float)
    stamps = np.datetime64("2020-01-01", "ns") + np.arange(len(close)) * np.timedelta64(1, "D")
    return Bars.from_columns(stamps, open_, high, low, close)


def cash_after_buy(cash, units, price, slip, fee):
    return cash - units * price * (1 + slip) - units * price * fee


def cash_after_sell(cash, units, price, slip, fee):
    return cash + units * price * (1 - slip) - units * price * fee


# --- timing and sizing --------------------------------------------------------------------


def test_target_is_filled_at_next_open_and_last_decision_is_never_filled():
    bars = make_bars([100, 100, 110, 121], [100, 105, 115, 120])
    res = run_backtest(bars, np.array([1.0, 1.0, 1.0, -1.0]))
    assert res.positions.tolist() == [0.0, 1.0, 1.0, 1.0]  # starts flat; the final -1 is ignored
    units = E0 / 100  # bought at bar 1's open
    assert res.equity.tolist() == pytest.approx([E0, units * 105, units * 115, units * 120])
    assert res.returns.tolist() == pytest.approx([0.0, 0.05, 115 / 105 - 1, 120 / 115 - 1])
    (trade,) = res.trades
    assert (trade.side, trade.entry_index, trade.exit_index, trade.exit_reason) == ("long", 1, 3, "end_of_data")
    assert trade.exit_price == 120.0  # closed at the last close, no exit costs
    assert trade.pnl == pytest.approx(units * 120 - E0)
    assert trade.bars_held == 3


def test_a_signal_on_the_last_bar_is_never_traded():
    bars = make_bars([100, 101, 102], [100, 101, 102])
    res = run_backtest(bars, np.array([0.0, 0.0, 1.0]))
    assert res.positions.tolist() == [0.0, 0.0, 0.0]
    assert res.trades == []
    assert res.equity.tolist() == [E0, E0, E0]


def test_fractional_target_buys_that_share_of_equity_and_holds_units():
    bars = make_bars([100, 100, 120, 90], [100, 110, 130, 80])
    res = run_backtest(bars, np.array([0.5, 0.5, 0.5, 0.5]))
    units = 0.5 * E0 / 100
    cash = E0 - units * 100
    assert res.equity.tolist() == pytest.approx([E0, cash + units * 110, cash + units * 130, cash + units * 80])
    assert res.trades[0].size == 0.5
    # Trade return is on the notional committed: the price move, not half of it.
    assert res.trades[0].return_pct == pytest.approx(80 / 100 - 1)


def test_resizing_within_a_side_is_one_trade_and_trades_the_difference():
    bars = make_bars([100, 100, 120, 120], [100, 110, 120, 130])
    fee = 0.001
    res = run_backtest(bars, np.array([0.5, 1.0, 1.0, 1.0]), fee_bps=10)
    # Bar 1: buy u1 so that u1 * 100 = 0.5 * equity after the fee.
    u1 = 0.5 * E0 / (100 * (1 + 0.5 * fee))
    cash = E0 - u1 * 100 * (1 + fee)
    # Bar 2: go to weight 1 of post-fee equity: u2 * 120 = cash' + u2 * 120 -> cash' = 0.
    # cash - (u2 - u1) * 120 * (1 + fee) = 0.
    u2 = u1 + cash / (120 * (1 + fee))
    assert res.equity[1] == pytest.approx(cash + u1 * 110)
    assert res.equity[3] == pytest.approx(u2 * 130)
    assert len(res.trades) == 1
    assert res.trades[0].pnl == pytest.approx(u2 * 130 - E0)


# --- costs ---------------------------------------------------------------------------------


def test_long_round_trip_fees_and_slippage_by_hand():
    bars = make_bars([100, 100, 110, 120, 125], [100, 105, 115, 122, 126])
    s, f = 0.002, 0.001  # 20 bps slippage, 10 bps fee
    res = run_backtest(bars, np.array([1.0, 1.0, 0.0, 0.0, 0.0]), fee_bps=10, slippage_bps=20)
    units = E0 / (100 * (1 + s) + 100 * f)  # all the cash goes into price + slippage + fee
    final = cash_after_sell(0.0, units, 120, s, f)
    assert res.equity[1] == pytest.approx(units * 105)
    assert res.equity[2] == pytest.approx(units * 115)
    assert res.equity[3] == res.equity[4] == pytest.approx(final)
    assert final / E0 - 1 == pytest.approx(1.2 * (1 - 0.003) / (1 + 0.003) - 1)  # the documented closed form
    (t,) = res.trades
    assert t.entry_price == pytest.approx(100.2)
    assert t.exit_price == pytest.approx(119.76)
    assert t.pnl == pytest.approx(final - E0)
    assert t.return_pct == pytest.approx((119.76 - 100.2) / 100.2 - f * (100 + 120) / 100.2)
    assert (t.exit_index, t.bars_held, t.exit_reason) == (3, 2, "signal")
    free = run_backtest(bars, np.array([1.0, 1.0, 0.0, 0.0, 0.0]))
    assert free.equity[-1] == pytest.approx(1.2 * E0)
    assert free.metrics["total_return"] - res.metrics["total_return"] == pytest.approx(0.2 - (final / E0 - 1))


def test_short_round_trip_fees_and_slippage_by_hand():
    bars = make_bars([100, 100, 90, 80], [100, 95, 85, 82])
    s, f = 0.002, 0.001
    res = run_backtest(bars, np.array([-1.0, -1.0, 0.0, 0.0]), fee_bps=10, slippage_bps=20)
    # Short u units worth the post-cost equity: u * 100 = E0 - u * 100 * (s + f).
    u = E0 / (100 * (1 + s + f))
    cash = cash_after_sell(E0, u, 100, s, f)
    assert res.equity[1] == pytest.approx(cash - u * 95)
    final = cash_after_buy(cash, u, 80, s, f)
    assert res.equity[3] == pytest.approx(final)
    (t,) = res.trades
    assert t.side == "short"
    assert (t.entry_price, t.exit_price) == (pytest.approx(99.8), pytest.approx(80.16))
    assert t.return_pct == pytest.approx((99.8 - 80.16) / 99.8 - f * (100 + 80) / 99.8)
    assert t.pnl == pytest.approx(final - E0)


def test_flip_long_to_short_closes_one_trade_and_opens_another():
    bars = make_bars([100, 100, 110, 99, 99], [100, 104, 105, 98, 99])
    res = run_backtest(bars, np.array([1.0, -1.0, -1.0, 0.0, 0.0]))
    e_flip = E0 * 110 / 100  # long from 100 to 110
    short_units = e_flip / 110
    assert res.equity[2] == pytest.approx(e_flip + short_units * (110 - 105))
    assert res.equity[3] == pytest.approx(e_flip + short_units * (110 - 98))
    assert res.equity[4] == pytest.approx(e_flip + short_units * (110 - 99))
    long_t, short_t = res.trades
    assert (long_t.side, long_t.entry_index, long_t.exit_index) == ("long", 1, 2)
    assert (short_t.side, short_t.entry_index, short_t.exit_index) == ("short", 2, 4)
    assert long_t.return_pct == pytest.approx(0.10)
    assert short_t.return_pct == pytest.approx(1 - 99 / 110)
    assert (short_t.exit_reason, short_t.bars_held) == ("signal", 2)  # bought back at bar 4's open
    assert long_t.pnl + short_t.pnl == pytest.approx(res.equity[-1] - E0)
    assert res.metrics["num_trades"] == 2.0
    assert res.metrics["win_rate"] == 1.0


def test_flip_with_costs_splits_costs_between_the_two_trades():
    bars = make_bars([100, 100, 110, 100], [100, 100, 110, 100])
    s, f = 0.001, 0.0005
    res = run_backtest(bars, np.array([1.0, -1.0, 0.0, 0.0]), fee_bps=5, slippage_bps=10)
    units = E0 / (100 * (1 + s + f))
    after_close = cash_after_sell(0.0, units, 110, s, f)
    u_short = after_close / (110 * (1 + s + f))
    cash = cash_after_sell(after_close, u_short, 110, s, f)
    final = cash_after_buy(cash, u_short, 100, s, f)
    long_t, short_t = res.trades
    assert long_t.pnl == pytest.approx(after_close - E0)
    assert short_t.pnl == pytest.approx(final - after_close)
    assert res.equity[-1] == pytest.approx(final)


# --- stops ---------------------------------------------------------------------------------


def test_stop_loss_exits_at_the_level_and_stays_flat_until_the_target_changes():
    open_ = [100, 100, 99, 96, 97, 98, 99]
    close = [100, 99, 96, 97, 98, 99, 100]
    low = [100, 98, 94, 95, 96, 97, 98]
    bars = make_bars(open_, close, low=low, high=np.maximum(open_, close))
    target = np.array([1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5])
    res = run_backtest(bars, target, stop_loss=0.05)
    # Entry at 100; level 95 is touched on bar 2 (low 94): exit at 95 -> equity 95,000.
    assert res.equity[2] == pytest.approx(95_000)
    assert res.equity[3] == pytest.approx(95_000)  # target unchanged (1.0): stay flat
    # The target changes to 0.5 on bar 4's close: re-enter at bar 5's open.
    assert res.positions.tolist() == [0.0, 1.0, 1.0, 0.0, 0.0, 0.5, 0.5]
    first, second = res.trades
    assert (first.exit_index, first.exit_price, first.exit_reason, first.bars_held) == (2, 95.0, "stop_loss", 2)
    assert first.return_pct == pytest.approx(-0.05)
    assert (second.entry_index, second.entry_price, second.size) == (5, 98.0, 0.5)
    assert res.equity[6] == pytest.approx(95_000 * 0.5 + 95_000 * 0.5 / 98 * 100)


def test_stop_loss_gap_fills_at_the_open():
    bars = make_bars([100, 100, 90, 91], [100, 99, 92, 93])
    res = run_backtest(bars, np.array([1.0, 1.0, 1.0, 1.0]), stop_loss=0.05)
    t = res.trades[0]
    assert (t.exit_index, t.exit_price, t.exit_reason) == (2, 90.0, "stop_loss")
    assert res.equity[-1] == pytest.approx(90_000)


def test_stop_loss_can_fire_on_the_entry_bar_and_pays_costs():
    bars = make_bars([100, 100, 100], [100, 99, 100], low=[100, 96, 99], high=[100, 100, 100])
    s = 0.001
    res = run_backtest(bars, np.array([1.0, 1.0, 1.0]), stop_loss=0.03, slippage_bps=10)
    level = 100 * (1 + s) * (1 - 0.03)  # off the entry fill price
    units = E0 / (100 * (1 + s))
    t = res.trades[0]
    assert (t.entry_index, t.exit_index, t.bars_held) == (1, 1, 1)
    assert t.exit_price == pytest.approx(level * (1 - s))
    assert res.equity[1] == pytest.approx(cash_after_sell(0.0, units, level, s, 0.0))


def test_take_profit_at_the_level_and_on_a_gap():
    bars = make_bars([100, 100, 104, 100, 120], [100, 104, 108, 100, 125],
                     high=[100, 105, 112, 100, 126], low=[100, 99, 103, 100, 119])
    res = run_backtest(bars, np.array([1.0, 1.0, 0.0, 1.0, 1.0]), take_profit=0.10)
    first, second = res.trades
    assert (first.exit_index, first.exit_price, first.exit_reason) == (2, pytest.approx(110.0), "take_profit")
    assert first.return_pct == pytest.approx(0.10)
    # Second trade: enters at bar 4's open (120) when the target returns to 1 — the
    # target changed, so no waiting rule applies; bar 4 high 126 < 132: no take-profit.
    assert (second.entry_index, second.exit_reason) == (4, "end_of_data")
    gap = make_bars([100, 100, 115], [100, 101, 116], high=[100, 102, 117], low=[100, 99, 114])
    t = run_backtest(gap, np.array([1.0, 1.0, 1.0]), take_profit=0.10).trades[0]
    assert (t.exit_index, t.exit_price, t.exit_reason) == (2, 115.0, "take_profit")


def test_short_stop_loss_and_take_profit_mirror_the_long_ones():
    bars = make_bars([100, 100, 103], [100, 101, 104], high=[100, 102, 106], low=[100, 99, 102])
    t = run_backtest(bars, np.array([-1.0, -1.0, -1.0]), stop_loss=0.05).trades[0]
    assert (t.side, t.exit_index, t.exit_price, t.exit_reason) == ("short", 2, 105.0, "stop_loss")
    assert t.return_pct == pytest.approx(-0.05)
    bars = make_bars([100, 100, 95], [100, 97, 93], high=[100, 100, 96], low=[100, 96, 91])
    t = run_backtest(bars, np.array([-1.0, -1.0, -1.0]), take_profit=0.08).trades[0]
    assert (t.exit_index, t.exit_price, t.exit_reason) == (2, 92.0, "take_profit")
    assert t.return_pct == pytest.approx(0.08)


def test_stop_comes_first_when_one_bar_touches_both_levels():
    bars = make_bars([100, 100, 100], [100, 100, 100], high=[100, 115, 100], low=[100, 90, 100])
    t = run_backtest(bars, np.array([1.0, 1.0, 1.0]), stop_loss=0.05, take_profit=0.10).trades[0]
    assert (t.exit_reason, t.exit_price) == ("stop_loss", 95.0)


# --- trades, metrics, edge cases -------------------------------------------------------------


def test_trade_records_are_plain_values():
    bars = make_bars([100, 100, 110], [100, 105, 111])
    t = run_backtest(bars, np.array([1.0, 0.0, 0.0])).trades[0]
    assert isinstance(t, TradeRecord)
    assert t.entry_time == dt.datetime(2020, 1, 2, tzinfo=dt.UTC)
    assert t.exit_time == dt.datetime(2020, 1, 3, tzinfo=dt.UTC)
    assert all(isinstance(getattr(t, k), float) for k in ("entry_price", "exit_price", "return_pct", "pnl"))
    assert all(isinstance(getattr(t, k), int) for k in ("entry_index", "exit_index", "bars_held"))
    json.dumps(t.to_dict(), allow_nan=False)
    assert t.exit_reason in EXIT_REASONS


def test_metrics_of_a_run_are_every_key_and_json_safe():
    rng = np.random.default_rng(3)
    close = 100 * np.cumprod(1 + rng.normal(0, 0.01, 300))
    bars = make_bars(np.r_[100, close[:-1]], close)
    res = run_backtest(bars, np.sign(rng.normal(size=300)), fee_bps=5, bars_per_year=252)
    assert tuple(res.metrics) == METRIC_KEYS
    assert all(isinstance(v, float) and math.isfinite(v) for v in res.metrics.values())
    json.dumps(res.metrics, allow_nan=False)
    assert res.metrics["num_trades"] == len(res.trades)
    assert res.metrics["buy_hold_return"] == pytest.approx(close[-1] / close[0] - 1)  # open[1] == close[0]


def test_flat_strategy_has_zero_metrics_except_buy_and_hold():
    bars = make_bars([100, 100, 110], [100, 105, 111])
    res = run_backtest(bars, np.zeros(3))
    assert res.trades == []
    assert {k: v for k, v in res.metrics.items() if k != "buy_hold_return"} == dict.fromkeys(
        [k for k in METRIC_KEYS if k != "buy_hold_return"], 0.0
    )
    assert res.metrics["buy_hold_return"] == pytest.approx(0.11)


def test_short_through_a_tripling_is_ruin_and_stays_at_zero():
    bars = make_bars([100, 100, 150, 190, 255], [100, 120, 180, 250, 260])
    res = run_backtest(bars, -np.ones(5))
    assert res.equity[:3].tolist() == pytest.approx([E0, E0 * (2 - 1.2), E0 * (2 - 1.8)])
    assert res.equity[3:].tolist() == [0.0, 0.0]
    assert res.returns[3] == -1.0 and res.returns[4] == 0.0
    assert res.positions[4] == 0.0
    (t,) = res.trades
    assert (t.exit_reason, t.pnl) == ("ruin", -E0)
    assert res.metrics["total_return"] == -1.0 and res.metrics["cagr"] == -1.0
    json.dumps(res.metrics, allow_nan=False)


def test_empty_and_one_bar_inputs():
    res = run_backtest(make_bars([], []), np.array([]))
    assert len(res.equity) == 0 and res.trades == [] and res.metrics == dict.fromkeys(METRIC_KEYS, 0.0)
    res = run_backtest(make_bars([100], [101]), np.array([1.0]))
    assert res.equity.tolist() == [E0] and res.returns.tolist() == [0.0]


def test_non_positive_prices_where_the_strategy_trades_are_refused():
    bars = make_bars([100, 0, 100], [100, 100, 100])
    with pytest.raises(ValueError, match="bars: prices must be positive"):
        run_backtest(bars, np.array([1.0, 1.0, 1.0]))
    run_backtest(bars, np.zeros(3))  # no fill at the bad open: nothing to refuse


def test_options_accept_any_real_number():
    from fractions import Fraction

    bars = make_bars([100, 100, 110], [100, 105, 111])
    res = run_backtest(bars, np.array([1.0, 0.0, 0.0]), fee_bps=np.float32(1), slippage_bps=Fraction(1, 2),
                       bars_per_year=np.int64(252))
    assert res.metrics["num_trades"] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"target": np.ones(2)}, "target"),
        ({"target": np.array([0.0, np.nan, 0.0])}, "target"),
        ({"target": np.array([0.0, 1.5, 0.0])}, "target"),
        ({"fee_bps": -1}, "fee_bps"),
        ({"slippage_bps": float("inf")}, "slippage_bps"),
        ({"stop_loss": 1.0}, "stop_loss"),
        ({"take_profit": -0.1}, "take_profit"),
        ({"bars_per_year": 0}, "bars_per_year"),
        ({"initial_capital": 0}, "initial_capital"),
        ({"fee_bps": "1"}, "fee_bps"),
        ({"stop_loss": True}, "stop_loss"),
    ],
)
def test_bad_input_is_refused_naming_the_field(kwargs, field):
    bars = make_bars([100, 100, 100], [100, 100, 100])
    args = {"target": np.zeros(3), **kwargs}
    with pytest.raises(ValueError, match=field):
        run_backtest(bars, args.pop("target"), **args)


# --- reference simulator and properties ------------------------------------------------------


def reference_backtest(bars, target, fee_bps, slippage_bps, stop_loss, take_profit):
    """Per-bar event loop with literal cash and units; the engine's rules, written plainly."""
    o, h, lo, c = bars.open, bars.high, bars.low, bars.close
    s, f = slippage_bps / 1e4, fee_bps / 1e4
    n = len(c)
    cash, units, weight, locked = E0, 0.0, 0.0, False
    equity, positions, trades = [], [], []
    trade = None

    def trade_to(new_weight, price):
        nonlocal cash, units
        before = cash + units * price
        # Units u such that u * price = new_weight * (equity after costs); the side of the
        # trade decides the sign of the cost term, so try both and keep the consistent one.
        for sign in (1.0, -1.0):
            u = new_weight * (before + (s + f) * sign * units * price) / (price * (1 + new_weight * (s + f) * sign))
            if (u - units) * sign >= 0:
                break
        d = u - units
        cash -= d * price + abs(d) * price * (s + f)
        units = u

    def close_trade(t, price, reason, index):
        nonlocal trade
        trade_to(0.0, price)
        trades.append((trade["side"], trade["entry"], index, trade["entry_price"], price * (1 - trade["side"] * s),
                       cash - trade["before"], reason))
        trade = None

    for t in range(n):
        if t >= 1:
            desired = target[t - 1]
            changed = desired != (target[t - 2] if t >= 2 else 0.0)
            if locked and changed:
                locked = False
            want = 0.0 if locked else desired
            if want != weight:
                if trade is not None and (want == 0 or np.sign(want) != trade["side"]):
                    close_trade(t, o[t], "signal", t)
                if want != 0:
                    opening = trade is None
                    if opening:
                        before = cash + units * o[t]
                    trade_to(want, o[t])
                    if opening:
                        side = np.sign(want)
                        trade = {"side": side, "entry": t, "entry_price": o[t] * (1 + side * s), "before": before}
                weight = want
        positions.append(weight)
        if trade is not None and (stop_loss or take_profit):
            side, fill = trade["side"], trade["entry_price"]
            hit = None
            if stop_loss:
                level = fill * (1 - side * stop_loss)
                if (lo[t] <= level) if side > 0 else (h[t] >= level):
                    hit = (min(o[t], level) if side > 0 else max(o[t], level), "stop_loss")
            if take_profit and hit is None:
                level = fill * (1 + side * take_profit)
                if (h[t] >= level) if side > 0 else (lo[t] <= level):
                    hit = (max(o[t], level) if side > 0 else min(o[t], level), "take_profit")
            if hit is not None:
                close_trade(t, hit[0], hit[1], t)
                weight, locked = 0.0, True
        equity.append(cash + units * c[t])
    if trade is not None:
        trades.append((trade["side"], trade["entry"], n - 1, trade["entry_price"], c[-1],
                       equity[-1] - trade["before"], "end_of_data"))
    return np.array(equity), np.array(positions), trades


@st.composite
def scenarios(draw, min_bars=2, max_bars=40):
    n = draw(st.integers(min_bars, max_bars))
    rets = draw(st.lists(st.floats(-0.04, 0.04), min_size=n, max_size=n))
    gaps = draw(st.lists(st.floats(-0.02, 0.02), min_size=n, max_size=n))
    wick = draw(st.lists(st.tuples(st.floats(0, 0.03), st.floats(0, 0.03)), min_size=n, max_size=n))
    close = np.empty(n)
    open_ = np.empty(n)
    prev = 100.0
    for i in range(n):
        open_[i] = prev * (1 + gaps[i])
        close[i] = open_[i] * (1 + rets[i])
        prev = close[i]
    high = np.maximum(open_, close) * (1 + np.array([w[0] for w in wick]))
    low = np.minimum(open_, close) * (1 - np.array([w[1] for w in wick]))
    target = np.array(draw(st.lists(st.sampled_from([-1.0, -0.5, 0.0, 0.25, 1.0]), min_size=n, max_size=n)))
    costs = {
        "fee_bps": draw(st.sampled_from([0.0, 1.0, 25.0])),
        "slippage_bps": draw(st.sampled_from([0.0, 5.0, 40.0])),
        "stop_loss": draw(st.sampled_from([0.0, 0.01, 0.03])),
        "take_profit": draw(st.sampled_from([0.0, 0.02, 0.06])),
    }
    return make_bars(open_, close, high, low), target, costs


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_engine_matches_the_per_bar_reference(scenario):
    bars, target, costs = scenario
    ref_equity, ref_positions, ref_trades = reference_backtest(bars, target, **costs)
    assume(ref_equity.min() > 0)
    res = run_backtest(bars, target, **costs)
    np.testing.assert_allclose(res.equity, ref_equity, rtol=1e-9)
    np.testing.assert_array_equal(res.positions, ref_positions)
    got = [(t.side, t.entry_index, t.exit_index, t.entry_price, t.exit_price, t.pnl, t.exit_reason) for t in res.trades]
    assert len(got) == len(ref_trades)
    for g, r in zip(got, ref_trades, strict=True):
        assert g[0] == {1: "long", -1: "short"}[r[0]]
        assert g[1:3] == r[1:3] and g[6] == r[6]
        assert g[3:6] == pytest.approx(r[3:6], rel=1e-9, abs=1e-6)
    # The trades' P&L adds up to the equity's change.
    assert sum(t.pnl for t in res.trades) == pytest.approx(res.equity[-1] - E0, abs=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_engine_matches_the_reference_on_long_series_with_reentries(seed):
    # Long runs of one side whose size keeps changing: after a stop the target changes again
    # within the run (re-entries), and trades last long enough to need several scan windows.
    rng = np.random.default_rng(seed)
    n = 600
    close = 100 * np.cumprod(1 + rng.normal(0, 0.01, n))
    open_ = np.r_[100.0, close[:-1] * (1 + rng.normal(0, 0.002, n - 1))]
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.004, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.004, n)))
    bars = make_bars(open_, close, high, low)
    side = np.repeat(rng.choice([-1.0, 0.0, 1.0], n // 100), 100)
    size = rng.choice([0.25, 0.5, 1.0], n) if seed % 2 else np.repeat(rng.choice([0.5, 1.0], n // 25), 25)
    target = side * size
    costs = {"fee_bps": 2.0, "slippage_bps": 3.0, "stop_loss": [0.005, 0.02, 0.0][seed % 3],
             "take_profit": [0.01, 0.0, 0.05][seed % 3]}
    ref_equity, ref_positions, ref_trades = reference_backtest(bars, target, **costs)
    res = run_backtest(bars, target, **costs)
    np.testing.assert_allclose(res.equity, ref_equity, rtol=1e-9)
    np.testing.assert_array_equal(res.positions, ref_positions)
    got = [(t.entry_index, t.exit_index, t.exit_reason) for t in res.trades]
    assert got == [(r[1], r[2], r[6]) for r in ref_trades]
    assert sum(t.pnl for t in res.trades) == pytest.approx(res.equity[-1] - E0)


def rolling_mean_target(close, window=3):
    """Long above the trailing mean of the last `window` closes, short below; flat before."""
    csum = np.concatenate(([0.0], np.cumsum(close)))
    target = np.zeros(len(close))
    if len(close) >= window:
        mean = (csum[window:] - csum[:-window]) / window
        target[window - 1 :] = np.where(close[window - 1 :] > mean, 1.0, -1.0)
    return target


@st.composite
def cut_scenarios(draw):
    bars, target, costs = draw(scenarios(min_bars=3))
    n = len(bars)
    t = draw(st.integers(0, n - 2))
    tail = n - t - 1
    factor = np.array(draw(st.lists(st.floats(0.5, 2.0), min_size=tail, max_size=tail)))
    wild = {}
    for name in ("open", "high", "low", "close"):
        values = getattr(bars, name).copy()
        values[t + 1 :] *= factor
        wild[name] = values
    # Keep the altered bars valid OHLC.
    wild["high"] = np.maximum.reduce([wild["high"], wild["open"], wild["close"]])
    wild["low"] = np.minimum.reduce([wild["low"], wild["open"], wild["close"]])
    changed = Bars.from_columns(bars.timestamps, wild["open"], wild["high"], wild["low"], wild["close"])
    return bars, changed, target, costs, t


def _known_by(res, t):
    """What the engine has decided by bar t's close: fills, positions, equity, finished trades."""
    closed = [
        (x.side, x.entry_index, x.exit_index, x.entry_price, x.exit_price, x.pnl)
        for x in res.trades
        if x.exit_index <= t and x.exit_reason in ("signal", "stop_loss", "take_profit")
    ]
    entries = [(x.side, x.entry_index, x.entry_price) for x in res.trades if x.entry_index <= t]
    return res.positions[: t + 1], res.equity[: t + 1], res.returns[: t + 1], closed, entries


def _assert_same_past(a, b, t):
    pa, ea, ra, ca, na = _known_by(a, t)
    pb, eb, rb, cb, nb = _known_by(b, t)
    np.testing.assert_array_equal(pa, pb)
    np.testing.assert_array_equal(ea, eb)
    np.testing.assert_array_equal(ra, rb)
    assert ca == cb
    assert na == nb


@settings(max_examples=200, deadline=None)
@given(cut_scenarios())
def test_changing_later_bars_never_changes_the_past_fixed_target(scenario):
    bars, changed, target, costs, t = scenario
    _assert_same_past(run_backtest(bars, target, **costs), run_backtest(changed, target, **costs), t)


@settings(max_examples=200, deadline=None)
@given(cut_scenarios())
def test_changing_later_bars_never_changes_the_past_rolling_mean(scenario):
    bars, changed, _target, costs, t = scenario
    a = run_backtest(bars, rolling_mean_target(bars.close), **costs)
    b = run_backtest(changed, rolling_mean_target(changed.close), **costs)
    _assert_same_past(a, b, t)


@settings(max_examples=100, deadline=None)
@given(scenarios(min_bars=3))
def test_costs_never_help(scenario):
    bars, target, costs = scenario
    free = run_backtest(bars, target, stop_loss=costs["stop_loss"], take_profit=costs["take_profit"])
    paid = run_backtest(bars, target, fee_bps=10.0, slippage_bps=10.0, stop_loss=costs["stop_loss"],
                        take_profit=costs["take_profit"])
    assume(free.equity.min() > 0)
    if not free.trades:
        np.testing.assert_array_equal(paid.equity, free.equity)
    elif costs["stop_loss"] == 0 and costs["take_profit"] == 0:
        # Without stops the trades are the same, each one pays: equity ends lower.
        assert paid.equity[-1] < free.equity[-1]
