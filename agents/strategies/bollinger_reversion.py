"""Bollinger-band mean reversion: fade closes outside the bands, exit at the middle band."""

from agents.strategies import indicators as ind
from agents.strategies.base import ParamSpec, StrategyTemplate


def signal(bars, params):
    close = bars.close
    middle, std = ind.rolling_mean_std(close, params["window"])
    width = params["num_std"] * std
    # Ties within rounding noise (a flat stretch: close == middle, zero width) neither enter
    # nor hold. NaN (warm-up) compares False: no entries and no exits until the bands exist.
    tol = ind.tie_tolerance(close)
    long = ind.latch(close < middle - width - tol, close >= middle - tol)
    short = ind.latch(close > middle + width + tol, close <= middle + tol)
    # A close under the lower band is also under the middle (a short exit) and vice versa,
    # so the two states never overlap.
    return long.astype(float) - short.astype(float)


TEMPLATE = StrategyTemplate(
    key="bollinger_reversion",
    name="Bollinger band reversion",
    description=(
        "Mean reversion. Bands are the `window`-bar SMA of the close (middle) plus/minus "
        "`num_std` population standard deviations of the close over the same window. Goes long "
        "when a bar closes below the lower band and holds until a close at or above the middle "
        "band; goes short when a bar closes above the upper band and holds until a close at or "
        "below the middle band (flat instead of short when long_only). Flat until `window` bars "
        "exist. A larger num_std waits for rarer, deeper stretches (fewer trades); a smaller one "
        "trades more often. Longer windows measure stretch against a slower mean and hold longer. "
        "Classic daily setting: 20 bars, 2.0 std."
    ),
    own_params=(
        ParamSpec("window", "int", 20, 5, 250, "Lookback in bars for the middle band and the deviation."),
        ParamSpec("num_std", "float", 2.0, 0.5, 4.0, "Band half-width in standard deviations."),
    ),
    signal=signal,
)
