"""SMA crossover: trend following on two simple moving averages of the close."""

from agents.strategies import indicators as ind
from agents.strategies.base import ParamSpec, StrategyTemplate


def signal(bars, params):
    fast = ind.sma(bars.close, params["fast"])
    slow = ind.sma(bars.close, params["slow"])
    # The slow average is NaN during warm-up (sign 0): flat until `slow` bars exist.
    return ind.tolerant_sign(fast - slow, bars.close)


TEMPLATE = StrategyTemplate(
    key="sma_crossover",
    name="SMA crossover",
    description=(
        "Trend following. Computes a fast and a slow simple moving average (SMA) of the close; "
        "long while the fast SMA is above the slow one, short while it is below (flat instead of "
        "short when long_only). Decided on each bar's close, filled at the next open; flat until "
        "`slow` bars of history exist. Smaller windows react faster but trade more and get "
        "whipsawed in sideways markets; wider windows trade rarely and lag turns. "
        "Typical daily settings: 10/30 (fast), 20/50, 50/200 (slow, a few trades a decade). "
        "Rule: fast < slow."
    ),
    own_params=(
        ParamSpec("fast", "int", 20, 1, 200, "Fast SMA window in bars (1 = the close itself)."),
        ParamSpec("slow", "int", 50, 2, 400, "Slow SMA window in bars; must be greater than fast."),
    ),
    signal=signal,
    constraints=(("must be less than slow", lambda p: p["fast"] < p["slow"], ("fast", "slow")),),
)
