"""Helpers shared by the market-data tests of agents and the console's import page."""

import numpy as np


def fred_series(n=600, seed=4, missing_every=9):
    """A FRED-style daily file (DATE,DCOILWTICO) with '.' on holidays, oldest first."""
    rng = np.random.default_rng(seed)
    close = 60 * np.exp(np.cumsum(rng.normal(0.0002, 0.02, n)))
    days = np.arange(np.datetime64("2015-01-02"), np.datetime64("2015-01-02") + n)
    lines = ["DATE,DCOILWTICO"]
    for i, (day, value) in enumerate(zip(days, close, strict=True)):
        lines.append(f"{day},{'.' if i % missing_every == 5 else f'{value:.2f}'}")
    return lines
