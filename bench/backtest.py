"""Backtest engine benchmark: prints figures, asserts nothing (run from the project root).

    .venv/bin/python bench/backtest.py [--quick]

- SMA(10, 20) crossover (signal by numpy cumsum) on SPX (5,031 bars), GOOG (2,148) and
  synthetic geometric random walks of 10k, 100k and 1,000,000 bars: median time per run
  of the signal and of the engine separately, ns per bar (flat = linear), peak memory of
  one engine run (tracemalloc).
- The same strategy in a plain event-driven per-bar Python loop on GOOG: the speed-up.
- Every registry template (if agents/strategies/registry.py imports) on SPX and 1M bars.

No Django: the CSVs are read with the csv module.
"""

import csv
import math
import pathlib
import statistics
import sys
import time
import tracemalloc
from collections import deque
from typing import NamedTuple

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.backtest.engine import run_backtest  # noqa: E402
from agents.backtest.metrics import compute_metrics  # noqa: E402
from agents.market.bars import Bars  # noqa: E402

DATA = ROOT / "agents" / "market" / "sample_data"
FEE_BPS, SLIPPAGE_BPS = 1.0, 2.0


def load_csv(name):
    with open(DATA / name, newline="") as fh:
        rows = list(csv.reader(fh))
    header, rows = rows[0], rows[1:]
    assert header[:5] == ["timestamp", "open", "high", "low", "close"], header
    cols = list(zip(*rows, strict=True))
    stamps = np.array(cols[0], dtype="datetime64[ns]")
    return Bars.from_columns(stamps, *(np.array(c, dtype=np.float64) for c in cols[1:6]))


def random_walk(n, seed=7):
    rng = np.random.default_rng(seed)
    log_ret = rng.normal(0.0002, 0.01, n)
    close = 100.0 * np.exp(np.cumsum(log_ret))
    open_ = np.empty(n)
    open_[0] = 100.0
    open_[1:] = close[:-1] * np.exp(rng.normal(0, 0.002, n - 1))
    wick = np.abs(rng.normal(0, 0.004, (2, n)))
    high = np.maximum(open_, close) * (1 + wick[0])
    low = np.minimum(open_, close) * (1 - wick[1])
    stamps = np.datetime64("2000-01-01T00:00", "ns") + np.arange(n) * np.timedelta64(1, "m")
    return Bars.from_columns(stamps, open_, high, low, close, np.ones(n))


def sma_cross(close, fast=10, slow=20):
    """1 while SMA(fast) > SMA(slow) on the close, else 0; flat during warm-up."""
    csum = np.empty(len(close) + 1)
    csum[0] = 0.0
    np.cumsum(close, out=csum[1:])
    target = np.zeros(len(close))
    if len(close) >= slow:
        f = (csum[slow:] - csum[slow - fast : -fast]) / fast
        s = (csum[slow:] - csum[:-slow]) / slow
        np.greater(f, s, out=target[slow - 1 :])  # bool written as 0.0 / 1.0
    return target


def median_seconds(fn, min_runs=5, budget=1.0):
    """(median seconds per call, number of calls, fastest call) within a time budget."""
    fn()  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - start < budget and len(times) < 2000):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(times), min(times)


def peak_memory(fn):
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def fmt_time(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:8.1f} us"
    return f"{seconds * 1e3:8.2f} ms"


# --- the comparison: per-bar Python engines --------------------------------------------
# Same rules as the engine (fill at the next open, slippage on the price, fee on notional,
# units held between fills), so their equity, trades and metrics must match it exactly.


class BarEvent(NamedTuple):
    index: int
    open: float
    high: float
    low: float
    close: float


class SignalEvent(NamedTuple):
    index: int
    weight: float


class OrderEvent(NamedTuple):
    weight: float


class FillEvent(NamedTuple):
    bar: BarEvent
    weight: float


class SmaCross:
    """The strategy: sees one bar at a time (its close), returns its target weight."""

    def __init__(self, fast=10, slow=20):
        self.fast, self.slow = fast, slow
        self.closes = deque(maxlen=slow)

    def on_bar(self, bar):
        self.closes.append(bar.close)
        if len(self.closes) < self.slow:
            return 0.0
        window = list(self.closes)
        return 1.0 if sum(window[-self.fast :]) / self.fast > sum(window) / self.slow else 0.0


class Book:
    """Cash, units, the equity curve and the trades; fills trade to a weight of equity."""

    def __init__(self, capital, fee_bps, slippage_bps):
        self.fee, self.slip = fee_bps / 1e4, slippage_bps / 1e4
        self.cash, self.units, self.weight = capital, 0.0, 0.0
        self.equity, self.positions, self.trades = [], [], []
        self.entry = None

    def fill(self, bar, weight):
        price, cost = bar.open, self.fee + self.slip
        before = self.cash + self.units * price
        # Units worth `weight` of the equity left after this trade's own costs.
        sign = 1.0 if weight * before >= self.units * price else -1.0
        units = weight * (before + cost * sign * self.units * price) / (price * (1 + weight * cost * sign))
        traded = units - self.units
        self.cash -= traded * price + abs(traded) * price * cost
        if self.units == 0.0 and units != 0.0:
            self.entry = (bar.index, price * (1 + self.slip), units, before)
        elif units == 0.0:
            index, entry_fill, entry_units, start = self.entry
            pnl = self.cash - start
            fill = price * (1 - self.slip)
            self.trades.append((index, bar.index, entry_fill, fill, pnl, pnl / (abs(entry_units) * entry_fill)))
            self.entry = None
        self.units, self.weight = units, weight

    def mark(self, bar):
        self.equity.append(self.cash + self.units * bar.close)
        self.positions.append(self.weight)

    def result(self, bars):
        equity = np.array(self.equity)
        returns = np.zeros(len(equity))
        returns[1:] = equity[1:] / equity[:-1] - 1
        if self.entry is not None:  # marked to the last close, as the engine does
            index, entry_fill, units, before = self.entry
            pnl = self.equity[-1] - before
            last = (index, len(bars) - 1, entry_fill, self.equity[-1], pnl, pnl / (abs(units) * entry_fill))
            self.trades.append(last)
        metrics = compute_metrics(equity, returns, np.array(self.positions), [t[5] for t in self.trades],
                                  [t[4] for t in self.trades], bars.close, 252.0, bars.open)
        return equity, self.trades, metrics


def _feed(bars):
    columns = (bars.open.tolist(), bars.high.tolist(), bars.low.tolist(), bars.close.tolist())
    return map(BarEvent._make, zip(range(len(bars)), *columns, strict=True))


def event_queue_backtest(bars, fast=10, slow=20, fee_bps=FEE_BPS, slippage_bps=SLIPPAGE_BPS, capital=100_000.0):
    """The classic event-driven design: a queue of market, signal, order and fill events."""
    strategy, book = SmaCross(fast, slow), Book(capital, fee_bps, slippage_bps)
    events, pending = deque(), []

    def on_market(bar):
        for order in pending:  # orders placed on the last close fill at this open
            events.append(FillEvent(bar, order.weight))
        pending.clear()
        events.append(SignalEvent(bar.index, strategy.on_bar(bar)))

    def on_signal(signal):
        if signal.weight != book.weight:
            events.append(OrderEvent(signal.weight))

    handlers = {
        BarEvent: on_market,
        SignalEvent: on_signal,
        OrderEvent: pending.append,
        FillEvent: lambda fill: book.fill(fill.bar, fill.weight),
    }
    for bar in _feed(bars):
        events.append(bar)
        marked = False
        while events:
            event = events.popleft()
            if type(event) is SignalEvent and not marked:  # fills are in: mark to the close
                book.mark(bar)
                marked = True
            handlers[type(event)](event)
        if not marked:
            book.mark(bar)
    return book.result(bars)


def callback_backtest(bars, fast=10, slow=20, fee_bps=FEE_BPS, slippage_bps=SLIPPAGE_BPS, capital=100_000.0):
    """Event-driven without a queue: the loop calls the strategy and the book directly."""
    strategy, book = SmaCross(fast, slow), Book(capital, fee_bps, slippage_bps)
    pending = None
    for bar in _feed(bars):
        if pending is not None:
            book.fill(bar, pending)
            pending = None
        book.mark(bar)
        weight = strategy.on_bar(bar)
        if weight != book.weight:
            pending = weight
    return book.result(bars)


def minimal_loop(bars, fast=10, slow=20, fee_bps=FEE_BPS, slippage_bps=SLIPPAGE_BPS, capital=100_000.0):
    """The leanest per-bar loop: long/flat, floats only, no events, trades or metrics."""
    o, c = bars.open.tolist(), bars.close.tolist()
    cost = (fee_bps + slippage_bps) / 1e4
    cash, units, want = capital, 0.0, 0.0
    fast_sum = slow_sum = 0.0
    equity = []
    for t in range(len(c)):
        if units == 0.0 and want > 0:  # fill yesterday's decision at today's open
            units = cash / (o[t] * (1 + cost))
            cash = 0.0
        elif units > 0.0 and want == 0:
            cash = units * o[t] * (1 - cost)
            units = 0.0
        equity.append(cash + units * c[t])
        fast_sum += c[t]
        slow_sum += c[t]
        if t >= fast:
            fast_sum -= c[t - fast]
        if t >= slow:
            slow_sum -= c[t - slow]
        want = 1.0 if t >= slow - 1 and fast_sum / fast > slow_sum / slow else 0.0
    return equity


def _records_of(result):
    result._trades = None  # rebuild: .trades is cached after the first access
    return result.trades


def bench_sma(label, bars):
    close = bars.close
    target = sma_cross(close)
    t_sig, *_ = median_seconds(lambda: sma_cross(close))
    t_eng, runs, t_best = median_seconds(
        lambda: run_backtest(bars, target, fee_bps=FEE_BPS, slippage_bps=SLIPPAGE_BPS)
    )
    stops = {"stop_loss": 0.02, "take_profit": 0.04}
    t_stop, *_ = median_seconds(
        lambda: run_backtest(bars, target, fee_bps=FEE_BPS, slippage_bps=SLIPPAGE_BPS, **stops), budget=0.5
    )
    peak = peak_memory(lambda: run_backtest(bars, target, fee_bps=FEE_BPS, slippage_bps=SLIPPAGE_BPS))
    res = run_backtest(bars, target, fee_bps=FEE_BPS, slippage_bps=SLIPPAGE_BPS)
    n = len(bars)
    print(
        f"{label:<22}{n:>10,} {fmt_time(t_sig)} {fmt_time(t_eng)} {t_eng / n * 1e9:7.1f} {fmt_time(t_best)} "
        f"{t_best / n * 1e9:7.1f} {fmt_time(t_stop)} {peak / 1e6:8.2f} MB {peak / n:6.1f} "
        f"{int(res.metrics['num_trades']):>7,} {runs:>5}"
    )
    return t_eng, t_best


def main(quick=False):
    print(f"numpy {np.__version__}, Python {sys.version.split()[0]}; "
          f"costs {FEE_BPS} bps fee + {SLIPPAGE_BPS} bps slippage")
    print("\n== SMA(10,20) crossover, long/flat: median time per run (engine: also the fastest run)")
    print(f"{'series':<22}{'bars':>10} {'signal':>11} {'engine':>11} {'ns/bar':>7} {'fastest':>11} {'ns/bar':>7} "
          f"{'+stops':>11} {'peak mem':>11} {'B/bar':>6} {'trades':>7} {'runs':>5}")
    spx, goog = load_csv("SPX_daily_1999_2018.csv"), load_csv("GOOG_daily_2004_2013.csv")
    bench_sma("SPX daily", spx)
    bench_sma("GOOG daily", goog)
    sizes = (10_000, 100_000) if quick else (10_000, 100_000, 1_000_000)
    per_bar = {}
    for n in sizes:
        t_med, t_best = bench_sma(f"random walk {n:,}", random_walk(n))
        per_bar[n] = (t_med / n, t_best / n)
    small, large = min(per_bar), max(per_bar)
    print(f"linearity: ns/bar at {large:,} / ns/bar at {small:,} bars = {per_bar[large][0] / per_bar[small][0]:.2f} "
          f"(median), {per_bar[large][1] / per_bar[small][1]:.2f} (fastest); 1.0 = linear. Above 1: the arrays "
          "outgrow the CPU caches (and the median suffers from other load on this machine).")

    print("\n== Per-bar Python engines vs vectorised (signal + engine), SMA(10,20), median per run")
    print(f"{'series':<14}{'bars':>7} {'vectorised':>11} {'event queue':>12} {'speed-up':>9} {'callbacks':>11} "
          f"{'speed-up':>9} {'fused loop':>11} {'speed-up':>9}  same results")
    for label, bars in (("GOOG daily", goog), ("SPX daily", spx), ("random walk", random_walk(100_000))):
        res = run_backtest(bars, sma_cross(bars.close), fee_bps=FEE_BPS, slippage_bps=SLIPPAGE_BPS)
        same = True
        for engine in (event_queue_backtest, callback_backtest):
            equity, trades, metrics = engine(bars)
            same = same and np.allclose(equity, res.equity, rtol=1e-9) and len(trades) == len(res.trade_table)
            same = same and all(math.isclose(metrics[k], res.metrics[k], rel_tol=1e-6, abs_tol=1e-9) for k in metrics)
        same = same and np.allclose(minimal_loop(bars), res.equity, rtol=1e-9)
        budget = 3.0 if len(bars) > 10_000 else 1.5
        t_vec, *_ = median_seconds(
            lambda b=bars: run_backtest(b, sma_cross(b.close), fee_bps=FEE_BPS, slippage_bps=SLIPPAGE_BPS)
        )
        t_queue, *_ = median_seconds(lambda b=bars: event_queue_backtest(b), min_runs=3, budget=budget)
        t_call, *_ = median_seconds(lambda b=bars: callback_backtest(b), min_runs=3, budget=budget)
        t_loop, *_ = median_seconds(lambda b=bars: minimal_loop(b), min_runs=3, budget=budget)
        print(f"{label:<14}{len(bars):>7} {fmt_time(t_vec)} {fmt_time(t_queue):>12} {t_queue / t_vec:8.1f}x "
              f"{fmt_time(t_call)} {t_call / t_vec:8.1f}x {fmt_time(t_loop)} {t_loop / t_vec:8.1f}x  {same}")
    res = run_backtest(goog, sma_cross(goog.close), fee_bps=FEE_BPS, slippage_bps=SLIPPAGE_BPS)
    t_records, *_ = median_seconds(lambda: _records_of(res))
    print(f"(event queue: market -> signal -> order -> fill events; callbacks: the same classes called directly; "
          f"fused loop: equity only, no trades or metrics. Materialising GOOG's {len(res.trade_table)} TradeRecord "
          f"objects on first .trades access: {fmt_time(t_records).strip()})")

    print("\n== Registry templates (defaults): target_positions + run_backtest, median per run")
    try:
        from agents.strategies.registry import all_templates
    except ImportError as exc:
        print(f"skipped: agents.strategies.registry does not import ({exc})")
        return
    series = [("SPX", spx)] + ([] if quick else [("1M bars", random_walk(1_000_000))])
    print(f"{'template':<24}" + "".join(f"{name + ' signal':>16}{name + ' engine':>16}" for name, _ in series))
    for tpl in all_templates():
        cells = []
        for _, bars in series:
            params = tpl.defaults()
            budget = 0.5 if len(bars) > 100_000 else 1.0
            t_sig, *_ = median_seconds(lambda t=tpl, b=bars, p=params: t.target_positions(b, p), budget=budget)
            target = tpl.target_positions(bars, params)
            stops = {"stop_loss": params.get("stop_loss", 0.0), "take_profit": params.get("take_profit", 0.0)}
            t_eng, *_ = median_seconds(
                lambda b=bars, tg=target, st=stops: run_backtest(b, tg, fee_bps=FEE_BPS, slippage_bps=SLIPPAGE_BPS,
                                                                 **st),
                budget=budget,
            )
            cells.append(f"{fmt_time(t_sig):>16}{fmt_time(t_eng):>16}")
        print(f"{tpl.key:<24}" + "".join(cells))
    assert math.isfinite(res.metrics["sharpe"])


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
