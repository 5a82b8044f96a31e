"""MACD: trend/momentum on the difference of two exponential moving averages."""

from agents.strategies import indicators as ind
from agents.strategies.base import ParamSpec, StrategyTemplate


def signal(bars, params):
    close = bars.close
    macd = ind.ema_span(close, params["fast"]) - ind.ema_span(close, params["slow"])
    trigger = ind.ema_span(macd, params["signal"])
    position = ind.tolerant_sign(macd - trigger, close)
    # The EMAs are seeded with the first close; give them `slow` bars, and the signal line
    # `signal` more, before trusting a crossing.
    position[: min(len(position), params["slow"] + params["signal"] - 2)] = 0.0
    return position


TEMPLATE = StrategyTemplate(
    key="ema_macd",
    name="MACD (EMA crossover)",
    description=(
        "Trend/momentum. The MACD line is EMA(close, fast) - EMA(close, slow) (EMAs with "
        "alpha = 2/(span+1)); the signal line is an EMA of the MACD line over `signal` bars. "
        "Long while MACD is above its signal line, short while below (flat instead of short "
        "when long_only); flat during the first slow+signal-2 bars of warm-up. Classic daily "
        "setting 12/26/9 trades often (roughly every few weeks); longer spans trade less and "
        "follow bigger trends; a longer signal span smooths out whipsaws but reacts later. "
        "Rule: fast < slow."
    ),
    own_params=(
        ParamSpec("fast", "int", 12, 2, 100, "Fast EMA span in bars."),
        ParamSpec("slow", "int", 26, 3, 300, "Slow EMA span in bars; must be greater than fast."),
        ParamSpec("signal", "int", 9, 2, 100, "Span of the EMA of the MACD line (the signal line)."),
    ),
    signal=signal,
    constraints=(("must be less than slow", lambda p: p["fast"] < p["slow"], ("fast", "slow")),),
)
