"""Series and agent plan for bench/learning_quality.py.

Every series is CSV text (the format the lab imports), so the bars the lab stores and the bars
the bench backtests its hold-out on come from the same parser and are equal to the last digit.
Nothing here touches the database or imports Django.

Synthetic bars are daily-like: business-day timestamps, close-to-close log returns with ~1%
sd, an open that gaps a little from the previous close, and a high/low that straddle
open/close. The close-to-close returns are exactly the designed process (the gap is a part of
the return, not added to it), so the planted edge is what the strategies see.

Planted edge: AR(1) log returns r_t = phi r_{t-1} + e_t, scaled so sd(r) stays ~1%. Trend
followers (sma, macd, donchian) profit from positive autocorrelation: a rise predicts a rise.
Mean-reversion templates (rsi, bollinger) profit from negative autocorrelation: a fall predicts
a rebound. Each planted agent gets the sign its template can exploit, so a lab that learns at
all has something real to find on every planted series.
"""

import io
import math
from dataclasses import dataclass

import numpy as np

LAB_FRACTION = 0.8  # the lab sees the oldest 80%; the newest 20% is the bench's hold-out
SYNTH_BARS = 2500  # ~10 years of trading days, like the bundled daily series
DAILY_VOL = 0.01
INTRABAR_STEPS = 24  # points of the intrabar path that high and low are taken from
BUNDLED = ("SPX", "IXIC", "GOOG", "EURUSD")  # BTCUSD monthly: too few bars for a 20% hold-out
MEAN_REVERSION = frozenset({"rsi_reversion", "bollinger_reversion"})
HEADER = "timestamp,open,high,low,close,volume"


@dataclass(frozen=True)
class AgentPlan:
    set: str  # bundled | null | planted
    series: str  # a display name, unique within the run
    template: str
    series_seed: int  # synthetic series only
    agent_seed: int
    phi: float = 0.0  # AR(1) coefficient of a synthetic series (0: random walk)
    symbol: str = ""  # bundled series only


def plan_agents(sets, templates, *, walks, planted, seed, phi, phi_strong=0.3):
    """The agents of a run, in a stable order; seeds derive from `seed` only."""
    plans = []
    if "bundled" in sets:
        for symbol in BUNDLED:
            for template in templates:
                plans.append(AgentPlan("bundled", symbol, template, 0, seed + len(plans), symbol=symbol))
    if "null" in sets:
        for i in range(walks):
            # Offsets keep the null, planted and agent seeds apart for any base seed.
            plans.append(AgentPlan("null", f"walk{i:02d}", templates[i % len(templates)],
                                   seed + 10_000 + i, seed + len(plans)))
    # Two strengths of planted edge: the modest one (phi) and a strong one (phi_strong), so the
    # report reads as a power curve rather than one pass/fail at a strength chosen after the fact.
    for name, strength, offset in (("planted", phi, 20_000), ("strong", phi_strong, 30_000)):
        if name not in sets:
            continue
        for i in range(planted):
            template = templates[i % len(templates)]
            signed = -abs(strength) if template in MEAN_REVERSION else abs(strength)
            plans.append(AgentPlan(name, f"ar{i:02d}{signed:+.2f}", template,
                                   seed + offset + i, seed + len(plans), phi=signed))
    return plans


def synthetic_csv(n_bars, phi, seed):
    """CSV text of a daily-like series whose close-to-close log returns are AR(1) with phi."""
    rng = np.random.default_rng(seed)
    shocks = rng.normal(0.0, DAILY_VOL * math.sqrt(1.0 - phi * phi), n_bars)
    returns = np.empty(n_bars)
    returns[0] = rng.normal(0.0, DAILY_VOL)
    for t in range(1, n_bars):
        returns[t] = phi * returns[t - 1] + shocks[t]
    close = 100.0 * np.exp(np.cumsum(returns))
    previous = np.concatenate(([100.0], close[:-1]))
    gap = rng.normal(0.0, 0.2 * DAILY_VOL, n_bars)  # overnight part of the return
    open_ = previous * np.exp(gap)
    # High and low are the extremes of an intrabar path from the open to the close (a Brownian
    # bridge in log price), so they carry no information the close does not: a wick drawn on
    # its own above max(open, close) would let a take-profit a few basis points above the open
    # fill on almost every bar, an edge planted in the null by the generator.
    steps = INTRABAR_STEPS
    t = np.arange(1, steps) / steps
    walk = np.cumsum(rng.normal(0.0, 1.0, (n_bars, steps)), axis=1)  # W_1 .. W_steps
    spread = math.sqrt(0.8) * DAILY_VOL / math.sqrt(steps)  # the intrabar share of the bar's variance
    bridge = spread * (walk[:, :-1] - t * walk[:, -1:])  # W_k - (k / steps) W_steps: 0 at both ends
    log_open, log_close = np.log(open_)[:, None], np.log(close)[:, None]
    path = np.exp(log_open + t * (log_close - log_open) + bridge)
    high = np.maximum(np.maximum(open_, close), path.max(axis=1))
    low = np.minimum(np.minimum(open_, close), path.min(axis=1))
    volume = rng.integers(500_000, 5_000_000, n_bars)
    days = np.arange(np.datetime64("2000-01-03"), np.datetime64("2000-01-03") + 2 * n_bars, dtype="datetime64[D]")
    days = days[np.is_busday(days)][:n_bars]
    lines = [HEADER]
    for row in zip(days, open_, high, low, close, volume, strict=True):
        # Rounded once here: the lab and the bench then read the very same numbers.
        lines.append(f"{row[0]},{row[1]:.6f},{row[2]:.6f},{row[3]:.6f},{row[4]:.6f},{row[5]}")
    return "\n".join(lines) + "\n"


def lab_part(csv_text):
    """(CSV of the oldest LAB_FRACTION of the bars, number of those bars)."""
    header, *rows = [line for line in csv_text.splitlines() if line.strip()]
    cut = int(len(rows) * LAB_FRACTION)
    return "\n".join([header, *rows[:cut]]) + "\n", cut


def parse_full(csv_text):
    """All bars of a CSV as `Bars`, through the lab's own parser (same values as the import)."""
    from datetime import UTC

    from agents.market.bars import Bars
    from agents.market.importer import parse_bars_csv

    parsed = parse_bars_csv(io.StringIO(csv_text))
    stamps = np.array([b.timestamp.astimezone(UTC).replace(tzinfo=None) for b in parsed], dtype="datetime64[us]")
    return Bars.from_columns(stamps.astype("datetime64[ns]"), [b.open for b in parsed], [b.high for b in parsed],
                             [b.low for b in parsed], [b.close for b in parsed], [b.volume for b in parsed])


def holdout_score(agent, params, full, cut, bars_per_year):
    """The agent's objective for `params` on bars [cut:] of `full`, backtested as the lab would.

    Targets come from the whole series (indicators warm up on the lab's bars; each target only
    sees its past), then the hold-out slice is backtested on its own, starting flat, with the
    agent's costs, so the figure is comparable with the lab's validation score.
    """
    from agents.backtest.engine import run_backtest
    from agents.strategies.registry import get_template

    template = get_template(agent.strategy_template)
    clean = template.validate(params)
    target = template.target_positions(full, clean)
    result = run_backtest(
        full.slice(cut, len(full)), target[cut:], fee_bps=agent.fee_bps, slippage_bps=agent.slippage_bps,
        bars_per_year=bars_per_year, stop_loss=clean.get("stop_loss", 0.0),
        take_profit=clean.get("take_profit", 0.0), initial_capital=agent.initial_capital,
    )
    value = result.metrics.get(agent.objective)
    return float(value) if value is not None and math.isfinite(value) else 0.0
