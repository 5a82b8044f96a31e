"""Vectorised backtest engine: bars + target positions -> equity curve, trades, metrics.

Pure numpy, no Django, no Python loop over bars: the work is done per fill (a handful of
array operations over all fills at once) and per bar (a few passes over the columns).
Python loops run only over trades re-entered after a stop within one run of the target
(agents.backtest.stops) and, on first access, over ``BacktestResult.trades`` to build the
records. ``python bench/backtest.py`` measures it.

Result: ``equity`` (marked to each close, ``equity[0]`` = initial capital), ``returns``
(``equity[t] / equity[t-1] - 1``, ``returns[0] = 0``), ``positions``, ``metrics`` (the
keys of ``METRIC_KEYS``, JSON-safe floats), ``trades`` (list of :class:`TradeRecord`) and
``trade_table`` (the same trades as numpy columns).

Rules
-----
Timing (no look-ahead). ``target[t]`` is the position decided on bar t's close; it is
filled at bar t+1's open. The account starts flat (position 0 during bar 0); the last
bar's decision is never filled. ``positions[t]`` is the target weight in force during bar
t, i.e. set by the fill at its open (a bar on which a stop fires still shows the weight).

Sizing. A fill sets the position to ``target`` x equity: 0.5 means units worth half of
the equity (after the fill's costs) at the fill's open price. Between fills the engine
holds those units (it does not rebalance), so the weight drifts with the price; it trades
only when the target changes (or a stop fires). Equity is cash + units x price, marked to
each bar's close. Shorts hold negative units.

Costs, per side, on traded notional. Slippage ``s = slippage_bps / 1e4`` moves the fill
price against the trade: buys fill at ``open * (1 + s)``, sells at ``open * (1 - s)``.
The fee ``f = fee_bps / 1e4`` is charged on the traded notional at the open price,
``|units traded| x open``. At a fill with pre-trade equity ``E'`` (marked at the open),
current weight ``w`` (drifted) and target weight ``p`` of the post-trade equity ``E''``:
traded notional ``= |p E'' - w E'|`` and ``E'' = E' - (f + s) |p E'' - w E'|``, hence
``E'' = E' (1 + sgn c w) / (1 + sgn c p)`` with ``c = f + s``, ``sgn = sign(p - w)``.
A full long round trip from flat (entry open e, exit open x) thus returns exactly
``(x / e) (1 - c) / (1 + c) - 1`` on equity.

Stops (``stop_loss`` / ``take_profit`` as fractions of the entry fill price; 0 = off).
A long trade entered at fill price P (slippage included) exits at the first bar, from
the entry bar on, whose low touches ``P (1 - stop_loss)`` or whose high touches
``P (1 + take_profit)``: at that level, or at the bar's open when the open is already
beyond it (a gap). Shorts mirror this (stop above, target below). When one bar touches
both, the stop is assumed to come first (the conservative reading of one OHLC bar).
The exit pays slippage and fee like any sale/purchase. After a stop or take-profit exit
the account stays flat until the target changes (a new signal: ``target[t] !=
target[t-1]``), and then takes the new target at the next open, whatever its side. A
change of size within the same side does not reset the levels: they stay tied to the
trade's first fill.

Trades. A trade is a maximal run of position on one side (long or short); resizing
within it is part of the trade, and a flip from long to short closes one trade and opens
another at the same open. ``pnl`` is the change of equity it caused, from just before its
entry fill to just after its exit fill, costs included (so the trades' P&L adds up to
the equity's). ``return_pct = pnl / (|units at entry| x entry_price)``: for a trade of
constant size that is ``side (exit_price - entry_price) / entry_price - f (entry_open +
exit_open) / entry_price``. ``bars_held`` counts the bars during which the position was
on (a stop bar counts). ``entry_index`` is the bar of the entry fill (its open);
``exit_index`` the bar of the exit: its open for a signal, the bar itself for a stop or
take-profit (intrabar), the last bar at the end of data. ``entry_time`` / ``exit_time``
are those bars' timestamps as timezone-aware UTC ``datetime.datetime``.

End of data. A trade still open after the last bar is closed at the last close for the
statistics, without exit costs (pnl = final equity - equity before its entry), with
``exit_reason = "end_of_data"``, and counts in ``num_trades``.

Ruin. If equity reaches 0 or below (only possible short, with the price more than
doubling), the account is wiped out: equity is 0 from that bar on, the position flat, and
the trade is closed at that bar's close with ``exit_reason = "ruin"`` and pnl = -(equity
before its entry).

Metrics are documented in :mod:`agents.backtest.metrics`; buy-and-hold runs from bar 1's
open to the last close.
"""

import datetime as dt
import math
import numbers
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from agents.backtest.metrics import compute_metrics, empty_metrics
from agents.backtest.stops import apply_stops
from agents.market.bars import Bars

EXIT_REASONS = ("signal", "stop_loss", "take_profit", "end_of_data", "ruin")
_SIGNAL, _END, _RUIN = 0, 3, 4  # codes into EXIT_REASONS; STOP (1) and TAKE (2) come from .stops
_SIDES = {1: "long", -1: "short"}


class TradeRecord(NamedTuple):
    """One trade; prices are fill prices (slippage included), return_pct and pnl are net."""

    side: str  # "long" | "short"
    entry_index: int
    exit_index: int
    entry_time: dt.datetime  # UTC, timezone-aware
    exit_time: dt.datetime
    entry_price: float
    exit_price: float
    return_pct: float
    pnl: float
    bars_held: int
    exit_reason: str = "signal"  # one of EXIT_REASONS
    size: float = 1.0  # |target weight| at entry

    def to_dict(self):
        """JSON-ready: times as ISO 8601 strings."""
        out = self._asdict()
        out["entry_time"] = self.entry_time.isoformat()
        out["exit_time"] = self.exit_time.isoformat()
        return out


@dataclass(frozen=True, slots=True, eq=False)
class TradeTable:
    """The trades as columns (what metrics use; TradeRecord objects are built on demand)."""

    side: np.ndarray  # int8: +1 long, -1 short
    entry_index: np.ndarray  # int64
    exit_index: np.ndarray  # int64
    entry_price: np.ndarray
    exit_price: np.ndarray
    return_pct: np.ndarray
    pnl: np.ndarray
    bars_held: np.ndarray  # int64
    exit_reason: np.ndarray  # int8 index into EXIT_REASONS
    size: np.ndarray

    def __len__(self):
        return len(self.pnl)


@dataclass(eq=False)
class BacktestResult:
    equity: np.ndarray  # equity marked to each bar's close
    returns: np.ndarray  # bar-to-bar simple returns of equity; returns[0] = 0
    positions: np.ndarray  # target weight in force during each bar (after its open's fill)
    metrics: dict  # METRIC_KEYS -> float
    trade_table: TradeTable
    timestamps: np.ndarray = field(repr=False)
    _trades: list | None = field(default=None, init=False, repr=False)

    @property
    def trades(self):
        """list[TradeRecord], built once on first access."""
        if self._trades is None:
            self._trades = _trade_records(self.trade_table, self.timestamps)
        return self._trades


def run_backtest(
    bars: Bars,
    target,
    *,
    fee_bps: float = 0.0,
    slippage_bps: float = 0.0,
    bars_per_year: float = 252.0,
    stop_loss: float = 0.0,
    take_profit: float = 0.0,
    initial_capital: float = 100_000.0,
) -> BacktestResult:
    """Backtest ``target`` (one weight in [-1, 1] per bar, decided on its close) on ``bars``."""
    _check_options(fee_bps, slippage_bps, bars_per_year, stop_loss, take_profit, initial_capital)
    o, h, lo, c = bars.open, bars.high, bars.low, bars.close
    n = len(c)
    target = np.asarray(target, dtype=np.float64)
    if target.shape != (n,):
        raise ValueError(f"target: expected one value per bar ({n}), got shape {target.shape}")
    if n == 0:
        return _empty_result(bars)
    # min/max rather than abs(): no temporary; NaN fails both comparisons.
    if not (np.minimum.reduce(target) >= -1.0 and np.maximum.reduce(target) <= 1.0):
        raise ValueError("target: every value must be a finite number in [-1, 1]")
    slip = slippage_bps / 1e4
    cost = (fee_bps + slippage_bps) / 1e4
    e0 = float(initial_capital)

    pos = np.empty(n)
    pos[0] = 0.0
    pos[1:] = target[:-1]
    if stop_loss > 0 or take_profit > 0:
        pos, held, stops = apply_stops(pos, o, h, lo, stop_loss, take_profit, slip)
    else:
        held, stops = pos, None

    # Fills, after a virtual one at index 0 (bar 0, weight 0, the initial capital), so that
    # "before this fill" is a view: w[:-1] is the weight held when each fill w[1:] happens.
    fills = np.not_equal(pos[1:], held[:-1]).nonzero()[0]  # at an open: weight != held at last close
    bar = np.empty(len(fills) + 1, dtype=np.int64)
    bar[0] = 0
    np.add(fills, 1, out=bar[1:])
    w = pos[bar]
    px = o[bar]
    why = np.zeros(len(bar), dtype=np.int8)
    if stops is not None and len(stops[0]):
        # A stop fires after the same bar's open fill: order by (bar, open before stop).
        key = np.concatenate((bar * 2, stops[0] * 2 + 1))
        order = np.argsort(key, kind="stable")
        bar = np.concatenate((bar, stops[0]))[order]
        w = np.concatenate((w, np.zeros(len(stops[0]))))[order]
        px = np.concatenate((px, stops[1]))[order]
        why = np.concatenate((why, stops[2]))[order]
    k = len(bar) - 1
    if k == 0:
        equity = np.full(n, e0)
        returns = np.zeros(n)
        table = _trade_table(bar, px, w, why, equity[:1], np.zeros(1), slip, n - 1, _END, e0, float(c[-1]))
        metrics = compute_metrics(equity, returns, pos, table.return_pct, table.pnl, c, bars_per_year, o)
        return BacktestResult(equity, returns, pos, metrics, table, bars.timestamps)
    px[0] = px[1]
    if not (np.minimum.reduce(px) > 0.0 and np.maximum.reduce(px) < np.inf):
        raise ValueError("bars: prices must be positive and finite where the strategy trades")

    prod = w[:-1] * w[1:]
    if np.minimum.reduce(prod) < 0.0:
        # A flip is a close then an open at the same price: costs are linear in units traded,
        # so splitting it changes no number and gives each trade its own P&L.
        flips = (prod < 0.0).nonzero()[0]
        flips += 1
        counts = np.ones(len(bar), dtype=np.int64)
        counts[flips] = 2
        bar, w, px, why = (np.repeat(a, counts) for a in (bar, w, px, why))
        flips += np.arange(len(flips))  # where each flip's first copy (the close) landed
        w[flips] = 0.0
        k = len(bar) - 1

    # Equity just after each fill: E''_j = E''_{j-1} * g_j * x_j, with g_j = 1 + w_{j-1} (R_j - 1)
    # the growth of the units held since the previous fill (R_j its price ratio) and x_j the
    # cost factor (1 + s c d) / (1 + s c w_j), where d = w_{j-1} R_j / g_j is the weight just
    # before the fill and s = sign(w_j - d). Multiplied out, g_j x_j = (g_j + s c a) / (1 + s c w_j)
    # with a = w_{j-1} R_j: no division by g_j (which only reaches 0 on ruin).
    prev, cur = w[:-1], w[1:]
    growth = px[1:] / px[:-1]
    g = growth - 1.0
    g *= prev
    g += 1.0
    if cost:
        a = growth
        a *= prev
        side = cur * g
        side -= a  # sign(w_j g_j - a) = sign(w_j - d) as long as g_j > 0
        sc = np.where(side >= 0.0, cost, -cost)
        a *= sc
        factor = g
        factor += a
        sc *= cur
        sc += 1.0
        factor /= sc
    else:
        factor = g
    eq = np.empty(k + 1)
    eq[0] = 1.0
    np.cumprod(factor, out=eq[1:])
    eq *= e0
    cash = 1.0 - w
    cash *= eq
    units = w * eq
    units /= px
    lengths = np.empty(k + 1, dtype=np.int64)  # bars whose close each fill's holdings govern
    np.subtract(bar[1:], bar[:-1], out=lengths[:-1])
    lengths[-1] = n - bar[-1]
    equity = np.repeat(units, lengths)
    equity *= c
    equity += np.repeat(cash, lengths)

    returns = np.empty(n)
    returns[0] = 0.0
    end, end_reason, cut = n - 1, _END, k + 1
    # `not > 0` rather than `<= 0`: a fill at exactly zero equity leaves NaN behind.
    if not (np.minimum.reduce(equity) > 0.0 and np.minimum.reduce(eq) > 0.0):
        end, cut = _ruin(equity, eq, bar)
        end_reason = _RUIN
        equity[end:] = 0.0
        pos[end + 1 :] = 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(equity[1:], equity[:-1], out=returns[1:])
        returns[1:] -= 1.0
        returns[end + 1 :] = 0.0
    else:
        np.divide(equity[1:], equity[:-1], out=returns[1:])
        returns[1:] -= 1.0

    table = _trade_table(bar[:cut], px[:cut], w[:cut], why[:cut], eq[:cut], units[:cut], slip, end, end_reason,
                         float(equity[end]), float(c[end]))
    metrics = compute_metrics(equity, returns, pos, table.return_pct, table.pnl, c, bars_per_year, o)
    return BacktestResult(equity, returns, pos, metrics, table, bars.timestamps)


_NUMBER = (int, float, np.integer, np.floating)  # fast path; any numbers.Real is accepted


def _check_options(fee_bps, slippage_bps, bars_per_year, stop_loss, take_profit, initial_capital):
    for name, value, low, low_ok, high in (
        ("fee_bps", fee_bps, 0.0, True, math.inf),
        ("slippage_bps", slippage_bps, 0.0, True, math.inf),
        ("stop_loss", stop_loss, 0.0, True, 1.0),
        ("take_profit", take_profit, 0.0, True, math.inf),
        ("bars_per_year", bars_per_year, 0.0, False, math.inf),
        ("initial_capital", initial_capital, 0.0, False, math.inf),
    ):
        if isinstance(value, bool) or (not isinstance(value, _NUMBER) and not isinstance(value, numbers.Real)):
            raise ValueError(f"{name}: must be a number")
        if not math.isfinite(value):
            raise ValueError(f"{name}: must be finite")
        if value < low or (value == low and not low_ok):
            raise ValueError(f"{name}: must be {'>=' if low_ok else '>'} {low:g}")
        if value >= high:
            raise ValueError(f"{name}: must be < {high:g}")
    if fee_bps + slippage_bps >= 1e4:
        raise ValueError("fee_bps + slippage_bps: must be < 10000 (100%)")


def _ruin(equity, eq, bar):
    """(bar where equity first reaches <= 0, number of fill events to keep before it)."""
    neg = ~(equity > 0.0)
    first = int(neg.argmax()) if neg.any() else len(equity) - 1
    cut = int(np.searchsorted(bar, first, "right"))
    bad = (~(eq > 0.0)).nonzero()[0]
    if len(bad) and bad[0] < cut:
        cut = int(bad[0])
        first = min(first, int(bar[cut]))
    return first, cut


def _trade_table(bar, px, w, why, eq, units, slip, end, end_reason, end_equity, end_close):
    """Trades from the fill events (index 0 virtual): entries leave flat, exits return to it."""
    flat = w == 0.0
    edges = np.not_equal(flat[:-1], flat[1:]).nonzero()[0]
    edges += 1
    opens, closes = edges[0::2], edges[1::2]
    m, nc = len(opens), len(closes)
    sign = np.sign(w[opens])
    entry_price = sign * slip
    entry_price += 1.0
    entry_price *= px[opens]
    notional = np.abs(units[opens])
    notional *= entry_price
    before = eq[opens - 1]  # equity just before an entry = after the previous fill (flat since)
    exit_index = np.empty(m, dtype=np.int64)
    exit_price = np.empty(m)
    pnl = np.empty(m)
    reason = np.empty(m, dtype=np.int8)
    exit_index[:nc] = bar[closes]
    np.multiply(px[closes], 1.0 - sign[:nc] * slip, out=exit_price[:nc])
    np.subtract(eq[closes], before[:nc], out=pnl[:nc])
    reason[:nc] = why[closes]
    if m > nc:  # still open: marked to the last close, no exit costs
        exit_index[nc] = end
        exit_price[nc] = end_close
        pnl[nc] = end_equity - before[nc]
        reason[nc] = end_reason
    entry_index = bar[opens]
    bars_held = exit_index - entry_index
    bars_held += reason != _SIGNAL  # a stop bar (or the last bar) was held too
    return TradeTable(sign.astype(np.int8), entry_index, exit_index, entry_price, exit_price, pnl / notional, pnl,
                      bars_held, reason, np.abs(w[opens]))


def _to_datetimes(stamps):
    # fromtimestamp(us / 1e6) is exact to the microsecond until ~2100 (us < 2**53, error < 0.5 us)
    # and 4x faster than datetime64 -> datetime -> replace(tzinfo).
    utc, from_ts = dt.UTC, dt.datetime.fromtimestamp
    return [from_ts(us / 1e6, utc) for us in stamps.astype("datetime64[us]").astype(np.int64).tolist()]


def _trade_records(table, timestamps):
    if not len(table):
        return []
    entry_times = _to_datetimes(timestamps[table.entry_index])
    exit_times = _to_datetimes(timestamps[table.exit_index])
    return [
        TradeRecord(_SIDES[s], ei, xi, et, xt, ep, xp, rp, pnl, bh, EXIT_REASONS[why], size)
        for s, ei, xi, et, xt, ep, xp, rp, pnl, bh, why, size in zip(
            table.side.tolist(), table.entry_index.tolist(), table.exit_index.tolist(), entry_times, exit_times,
            table.entry_price.tolist(), table.exit_price.tolist(), table.return_pct.tolist(), table.pnl.tolist(),
            table.bars_held.tolist(), table.exit_reason.tolist(), table.size.tolist(), strict=True,
        )
    ]


def _empty_result(bars):
    empty_f, empty_i = np.empty(0), np.empty(0, dtype=np.int64)
    table = TradeTable(np.empty(0, dtype=np.int8), empty_i, empty_i, empty_f, empty_f, empty_f, empty_f, empty_i,
                       np.empty(0, dtype=np.int8), empty_f)
    return BacktestResult(np.empty(0), np.empty(0), np.empty(0), empty_metrics(), table, bars.timestamps)
