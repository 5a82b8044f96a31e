"""Backtest engine: bars + target positions -> equity curve, trades, metrics.

:func:`run_batch` backtests many target rows over one window in one call of the numba loop
(:mod:`agents.backtest.kernel`); :func:`run_backtest` is a batch of one row (README "Strategies,
backtests and metrics" says why). Result: ``equity`` (marked to each close, ``equity[0]`` =
initial capital), ``returns`` (``equity[t] / equity[t-1] - 1``, ``returns[0] = 0``),
``positions``, ``metrics`` (:mod:`agents.backtest.metrics`), ``trades`` (:class:`TradeRecord`)
and ``trade_table`` (the same as numpy columns). Prices must be finite in every bar (a NaN close
would read as ruin) and positive where the strategy trades.

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

Buy-and-hold runs from bar 1's open to the last close.
"""

import datetime as dt
import math
import numbers
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from agents.backtest import kernel
from agents.backtest.metrics import compute_metrics_windows, empty_metrics
from agents.market.bars import Bars

EXIT_REASONS = ("signal", "stop_loss", "take_profit", "end_of_data", "ruin")
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
    target = np.asarray(target, dtype=np.float64)
    if target.ndim != 1:
        raise ValueError(f"target: expected one value per bar ({len(bars)}), got shape {target.shape}")
    batch = run_batch(bars, target[None, :], fee_bps=fee_bps, slippage_bps=slippage_bps,
                      bars_per_year=bars_per_year, stop_loss=stop_loss, take_profit=take_profit,
                      initial_capital=initial_capital)
    return batch.result(0)


@dataclass(eq=False)
class BatchResult:
    """The backtests of many target rows over one window; row r is :meth:`result` (r)."""

    equity: np.ndarray  # rows x bars
    returns: np.ndarray  # rows x bars, returns[:, 0] = 0
    positions: np.ndarray  # rows x bars
    metrics: list  # one METRIC_KEYS dict per row
    trades: np.ndarray  # (rows x room) x kernel.N_TRADE_FIELDS; row r's in [r * room, r * room + counts[r])
    counts: np.ndarray  # trades per row
    timestamps: np.ndarray = field(repr=False)
    close: np.ndarray = field(default=None, repr=False)
    open: np.ndarray = field(default=None, repr=False)
    room: int = 0  # rows of ``trades`` per row of targets

    def __len__(self):
        return len(self.equity)

    def metrics_window(self):
        """This batch as one window of :func:`agents.backtest.metrics.compute_metrics_windows`."""
        return (self.equity, self.returns, self.positions, *self.flat_trades(), self.close, self.open)

    def flat_trades(self):
        """(net returns, pnls, row) of every row's trades, in row order."""
        n, counts = self.room, self.counts
        # Row r's trades sit at r * room onwards.
        owner = np.repeat(np.arange(len(counts)), counts)
        flat = self.trades[owner * n + (np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts))]
        return flat[:, kernel.T_RETURN], flat[:, kernel.T_PNL], owner

    def trade_table(self, r):
        n = self.room
        return _table(self.trades[r * n : r * n + int(self.counts[r])])

    def trade_records(self, r, last=None):
        """Row r's TradeRecords (only the ``last`` ones when given: the others are not built)."""
        n = self.room
        end = r * n + int(self.counts[r])
        start = r * n if last is None else max(r * n, end - last)
        return _trade_records(_table(self.trades[start:end]), self.timestamps)

    def trade_records_rows(self, last):
        """:meth:`trade_records` (r, last) of every row, built together (one table, one time conversion)."""
        n, counts = self.room, self.counts
        kept = np.minimum(counts, last)
        ends = np.arange(len(counts)) * n + counts
        # The last kept[r] trades of row r, rows in order.
        index = np.repeat(ends - kept, kept) + (np.arange(int(kept.sum())) - np.repeat(np.cumsum(kept) - kept, kept))
        records = _trade_records(_table(self.trades[index]), self.timestamps)
        out, start = [], 0
        for k in kept.tolist():
            out.append(records[start : start + k])
            start += k
        return out

    def result(self, r):
        return BacktestResult(self.equity[r], self.returns[r], self.positions[r], self.metrics[r],
                              self.trade_table(r), self.timestamps)


def run_batch(bars: Bars, targets, *, fee_bps=0.0, slippage_bps=0.0, bars_per_year=252.0, stop_loss=0.0,
              take_profit=0.0, initial_capital=100_000.0, with_metrics=True) -> BatchResult:
    """Backtest every row of ``targets`` (rows x bars) on ``bars`` in one kernel call.

    ``stop_loss`` and ``take_profit`` are one value for all rows or one per row; the costs,
    capital and bars per year are shared. ``with_metrics=False`` leaves ``metrics`` empty for a
    caller that computes several batches' metrics in one call (:meth:`metrics_window`).
    """
    n = len(bars)
    targets = np.asarray(targets, dtype=np.float64)
    if targets.ndim != 2 or targets.shape[1] != n:
        raise ValueError(f"target: expected one value per bar ({n}) in each row, got shape {targets.shape}")
    rows = len(targets)
    stops = _per_row("stop_loss", stop_loss, rows)
    takes = _per_row("take_profit", take_profit, rows)
    _check_options(fee_bps, slippage_bps, bars_per_year, initial_capital)
    if n == 0:
        empty = np.empty((rows, 0))
        return BatchResult(empty, empty, empty, [empty_metrics() for _ in range(rows)],
                           np.empty((0, kernel.N_TRADE_FIELDS)), np.zeros(rows, dtype=np.int64), bars.timestamps)
    # min/max rather than abs(): no temporary; NaN fails both comparisons.
    if rows and not (np.minimum.reduce(targets, axis=None) >= -1.0 and np.maximum.reduce(targets, axis=None) <= 1.0):
        raise ValueError("target: every value must be a finite number in [-1, 1]")
    o, h, lo, c = (kernel.plain(a) for a in (bars.open, bars.high, bars.low, bars.close))
    for name, prices in (("open", o), ("high", h), ("low", lo), ("close", c)):
        _check_finite(name, prices)
    targets = kernel.rows_of(targets)
    equity, positions, returns = np.empty((rows, n)), np.empty((rows, n)), np.empty((rows, n))
    # Room for a quarter of the bars' worth of trades per row; a row that trades more (rare: that is
    # a trade every four bars) runs again with room for one per bar, the most there can be. Room
    # for n trades per row was most of a batch's memory, and fresh memory is what it paid for.
    room = min(n, max(_TRADE_ROOM_MIN, n // 4))
    while True:
        trades = np.empty((rows * room, kernel.N_TRADE_FIELDS))
        counts = np.zeros(rows, dtype=np.int64)
        status = kernel.simulate(o, h, lo, c, targets, stops, takes, (fee_bps + slippage_bps) / 1e4,
                                 slippage_bps / 1e4, float(initial_capital), equity, positions, returns, trades, counts)
        if status != kernel.FULL:
            break
        room = n
    if status == kernel.BAD_PRICE:
        raise ValueError("bars: prices must be positive and finite where the strategy trades")
    batch = BatchResult(equity, returns, positions, [], trades, counts, bars.timestamps, c, o, room)
    if with_metrics:
        batch.metrics = compute_metrics_windows([batch.metrics_window()], bars_per_year)[0]
    return batch


_TRADE_ROOM_MIN = 16
_NUMBER = (int, float, np.integer, np.floating)  # fast path; any numbers.Real is accepted
# name -> (low, low allowed, high excluded)
_BOUNDS = {
    "fee_bps": (0.0, True, math.inf),
    "slippage_bps": (0.0, True, math.inf),
    "stop_loss": (0.0, True, 1.0),
    "take_profit": (0.0, True, math.inf),
    "bars_per_year": (0.0, False, math.inf),
    "initial_capital": (0.0, False, math.inf),
}


def _check_option(name, value):
    low, low_ok, high = _BOUNDS[name]
    if isinstance(value, bool) or (not isinstance(value, _NUMBER) and not isinstance(value, numbers.Real)):
        raise ValueError(f"{name}: must be a number")
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be finite")
    if value < low or (value == low and not low_ok):
        raise ValueError(f"{name}: must be {'>=' if low_ok else '>'} {low:g}")
    if value >= high:
        raise ValueError(f"{name}: must be < {high:g}")


def _check_options(fee_bps, slippage_bps, bars_per_year, initial_capital):
    for name, value in (("fee_bps", fee_bps), ("slippage_bps", slippage_bps), ("bars_per_year", bars_per_year),
                        ("initial_capital", initial_capital)):
        _check_option(name, value)
    if fee_bps + slippage_bps >= 1e4:
        raise ValueError("fee_bps + slippage_bps: must be < 10000 (100%)")


def _per_row(name, value, rows):
    """A stop option as one float per row: a number shared by every row, or one per row."""
    if np.ndim(value) == 0:
        _check_option(name, value)
        return np.full(rows, float(value))
    values = np.asarray(value, dtype=np.float64)
    if values.shape != (rows,):
        raise ValueError(f"{name}: expected one number or one per row ({rows}), got shape {values.shape}")
    low, _low_ok, high = _BOUNDS[name]  # the stop options allow their low bound
    if not (np.all(values >= low) and np.all(values < high)):  # NaN fails both: find the message
        for v in values.tolist():
            _check_option(name, v)
    return values


def _check_finite(name, prices):
    """NaN or inf in a price would poison equity silently (a NaN close read as ruin): refuse it."""
    if not np.isfinite(prices).all():
        bad = int(np.flatnonzero(~np.isfinite(prices))[0])
        raise ValueError(f"bars.{name}: every price must be a finite number (no NaN or inf); bar {bad} has "
                         f"{float(prices[bad])!r}")


def _table(rows):
    k = kernel
    return TradeTable(rows[:, k.T_SIDE].astype(np.int8), rows[:, k.T_ENTRY].astype(np.int64),
                      rows[:, k.T_EXIT].astype(np.int64), rows[:, k.T_ENTRY_PRICE].copy(),
                      rows[:, k.T_EXIT_PRICE].copy(), rows[:, k.T_RETURN].copy(), rows[:, k.T_PNL].copy(),
                      rows[:, k.T_HELD].astype(np.int64), rows[:, k.T_REASON].astype(np.int8),
                      rows[:, k.T_SIZE].copy())


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
