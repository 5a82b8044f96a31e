"""Donchian channel breakout (turtle style): trade new N-bar extremes, exit on M-bar reversals."""

from agents.strategies import indicators as ind
from agents.strategies.base import ParamSpec, StrategyTemplate


def signal(bars, params):
    close = bars.close
    entry, exit_ = params["entry_window"], params["exit_window"]
    # Channels of the *prior* bars (shifted by one), so today's close can break them.
    entry_high = ind.shift(ind.rolling_max(bars.high, entry))
    entry_low = ind.shift(ind.rolling_min(bars.low, entry))
    exit_high = ind.shift(ind.rolling_max(bars.high, exit_))
    exit_low = ind.shift(ind.rolling_min(bars.low, exit_))
    # NaN (warm-up) compares False: no entries and no exits until the channels exist.
    long = ind.latch(close > entry_high, close < exit_low)
    short = ind.latch(close < entry_low, close > exit_high)
    # exit_window <= entry_window makes every long entry a short exit and vice versa,
    # so the two states never overlap.
    return long.astype(float) - short.astype(float)


TEMPLATE = StrategyTemplate(
    key="donchian_breakout",
    name="Donchian channel breakout",
    description=(
        "Trend following (turtle style). Goes long when a bar closes above the highest high of "
        "the previous `entry_window` bars and holds until a close below the lowest low of the "
        "previous `exit_window` bars; goes short when a bar closes below the lowest low of the "
        "previous `entry_window` bars and holds until a close above the highest high of the "
        "previous `exit_window` bars (flat instead of short when long_only). Flat until the "
        "channels have history. Longer entry windows catch only big breakouts (fewer trades); "
        "a shorter exit window locks in gains sooner but exits on smaller pullbacks. "
        "Classic daily settings: 20/10 and 55/20. Rule: exit_window <= entry_window."
    ),
    own_params=(
        ParamSpec("entry_window", "int", 20, 2, 250, "Breakout channel length in bars."),
        ParamSpec("exit_window", "int", 10, 1, 250, "Exit channel length in bars; at most entry_window."),
    ),
    signal=signal,
    constraints=(
        (
            "must be less than or equal to entry_window",
            lambda p: p["exit_window"] <= p["entry_window"],
            ("exit_window", "entry_window"),
        ),
    ),
    needs_intrabar_range=True,
)
