"""Compiled loops behind :mod:`agents.strategies.indicators`, where numpy paid mostly for its calls.

A rolling sum in numpy took five array passes and temporaries (~30 us on 5,000 bars, most of a
batch's target positions); the same arithmetic as one compiled loop costs a few microseconds.
"The same arithmetic" is literal: every sum is formed in the order numpy formed it (a sequential
prefix sum restarting every n bars, then ``(previous block's total - its prefix) + this block's
prefix``), so the values are bit for bit those of the numpy version and no result moves.
``cache=True`` keeps the machine code under __pycache__; :func:`warm_up` runs at worker start.
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def rolling_sum_blocked(x, n, out):
    """Sum of the last ``n`` values of ``x`` into ``out`` (NaN for the first n - 1), with prefix sums
    restarting every n bars so the rounding error stays proportional to n x |x|, not to the
    running total (``indicators.rolling_sum`` explains the layout)."""
    size = len(x)
    previous = np.empty(n)  # the previous block's prefix sums
    current = np.empty(n)
    start = 0
    while start < size:
        acc = x[start]
        current[0] = acc
        stop = min(start + n, size)
        for r in range(1, stop - start):
            acc += x[start + r]
            current[r] = acc
        if start == 0:
            for r in range(stop):
                out[r] = np.nan
            if stop == n:
                out[n - 1] = current[n - 1]
        else:
            total = previous[n - 1]
            for r in range(stop - start):
                out[start + r] = (total - previous[r]) + current[r]
        previous, current = current, previous
        start = stop
    return out


@njit(cache=True, nogil=True)
def tolerant_sign_into(diff, tol, out):
    """+1 / -1 where diff > tol / diff < -tol, else 0 (a tie or NaN), into ``out``."""
    for i in range(len(diff)):
        d = diff[i]
        out[i] = 1.0 if d > tol[i] else (-1.0 if d < -tol[i] else 0.0)
    return out


def warm_up():
    """Load (or compile, the first time) the loops, so no request pays for it: for writeable and
    read-only inputs (cached bar columns and shared indicators are read-only, another signature)."""
    for writeable in (True, False):
        x = np.ones(4)
        x.flags.writeable = writeable
        rolling_sum_blocked(x, 2, np.empty(4))
        tolerant_sign_into(x, x, np.empty(4))
        tolerant_sign_into(np.ones(4), x, np.empty(4))
