"""RSI mean reversion: buy oversold, sell overbought, hold until RSI recovers to the exit level."""

from agents.strategies import indicators as ind
from agents.strategies.base import ParamSpec, StrategyTemplate

# RSI is a ratio of averages, so one computed exactly at a level (60 from whole-number prices)
# lands ~1e-14 either side of it depending on the formula. Closer than this to a level is at it.
LEVEL_TIE = 1e-9


def signal(bars, params):
    rsi = ind.rsi(bars.close, params["period"])
    # NaN (warm-up) compares False: no entries and no exits until RSI exists.
    long = ind.latch(rsi < params["oversold"] - LEVEL_TIE, rsi >= params["exit"] - LEVEL_TIE)
    short = ind.latch(rsi > params["overbought"] + LEVEL_TIE, rsi <= params["exit"] + LEVEL_TIE)
    # With oversold < exit < overbought a long entry is a short exit and vice versa,
    # so the two states never overlap.
    return long.astype(float) - short.astype(float)


TEMPLATE = StrategyTemplate(
    key="rsi_reversion",
    name="RSI mean reversion",
    description=(
        "Mean reversion. Wilder's RSI (0-100) over `period` bars. Goes long when RSI closes "
        "below `oversold` and holds until RSI closes at or above `exit`; goes short when RSI "
        "closes above `overbought` and holds until RSI closes at or below `exit` (flat instead of "
        "short when long_only). Flat during the first `period` bars. Wider thresholds "
        "(e.g. 20/80) wait for deeper extremes and trade rarely; narrower ones (35/65) trade "
        "more. A short period (2-5) makes RSI jumpy and gives many short-term trades; an exit "
        "near 50 holds until momentum is neutral, a lower exit takes profit sooner on longs. "
        "Rule: oversold < exit < overbought."
    ),
    own_params=(
        ParamSpec("period", "int", 14, 2, 100, "RSI lookback in bars (Wilder smoothing)."),
        ParamSpec("oversold", "float", 30.0, 1.0, 49.0, "Enter long when RSI closes below this level."),
        ParamSpec("overbought", "float", 70.0, 51.0, 99.0, "Enter short when RSI closes above this level."),
        ParamSpec(
            "exit",
            "float",
            50.0,
            2.0,
            98.0,
            "Close a long when RSI reaches this level, a short when it falls back to it.",
        ),
    ),
    signal=signal,
    constraints=(
        ("must be less than exit", lambda p: p["oversold"] < p["exit"], ("oversold", "exit")),
        ("must be greater than exit", lambda p: p["overbought"] > p["exit"], ("overbought", "exit")),
    ),
)
