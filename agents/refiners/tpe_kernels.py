"""A compiled log of the normal CDF for Optuna's TPE, bit for bit the one Optuna computes.

Why: in Optuna 5.0 ``optuna.samplers._tpe._truncnorm._log_ndtr`` maps a pure-Python function
over its input with ``np.frompyfunc``. TPE calls it for every pair of (distinct candidate value,
kernel) of every integer parameter on every ask (the Gaussian mass of each integer's bin), so for
the templates' integer windows it was about half of a proposal: ~150,000 Python calls per
iteration of 8 candidates.

"Bit for bit" is literal: the loop below is Optuna's own arithmetic (the same branches at 6 and
-20, ``erf``/``erfc``/``log`` from the same C library, which numba calls as CPython does, and
the asymptotic series below -20 with Python's ``pow(a, 2.0)``), so the samples, and therefore the
proposals for a given seed, do not move. Only NaN and values whose square overflows are left to
Optuna's own function (it warns or raises there). tests/agents/test_refiner_tpe_kernels.py checks
the equality on a dense grid, the far tail and random draws, and that the proposals are unchanged.

No Optuna import here (the refiners load Optuna only when one is built; agents' warm-up imports
this module): :mod:`agents.refiners.optuna_refiner` installs :func:`log_ndtr` into Optuna.
"""

import math
import sys

import numpy as np
from numba import njit

# Below this, Optuna uses an asymptotic series.
SERIES_BELOW = -20.0
EPSILON = sys.float_info.epsilon
SQUARE_OVERFLOWS = -1e154  # a ** 2 overflows a float below about -1.34e154
_SQRT_HALF = 1 / 2**0.5
_ROOT_2 = 2**0.5


@njit(cache=True, nogil=True)
def _ndtr(a):
    x = a / _ROOT_2
    if x < -_SQRT_HALF:
        return 0.5 * math.erfc(-x)
    if x < _SQRT_HALF:
        return 0.5 + 0.5 * math.erf(x)
    return 1.0 - 0.5 * math.erfc(x)


@njit(cache=True, nogil=True)
def _log_ndtr_series(a, two):
    # ``a ** two`` with ``two`` a runtime 2.0: Python's ``a**2`` is the C library's pow(a, 2.0),
    # which differs from a * a in about 1 value in 1,000, and LLVM rewrites a constant pow(a, 2.0)
    # into a * a. EPSILON is sys.float_info.epsilon.
    square = a**two
    log_lhs = -0.5 * square - math.log(-a) - 0.5 * math.log(2 * math.pi)
    last_total = 0.0
    right_hand_side = 1.0
    numerator = 1.0
    denom_factor = 1.0
    denom_cons = 1 / square
    sign = 1.0
    i = 0
    while abs(last_total - right_hand_side) > EPSILON:
        i += 1
        last_total = right_hand_side
        sign = -sign
        denom_factor *= denom_cons
        numerator *= 2 * i - 1
        right_hand_side += sign * numerator * denom_factor
    return log_lhs + math.log(right_hand_side)


@njit(cache=True, nogil=True)
def _log_ndtr_into(a, out, two):
    """Optuna's three branches into ``out``; returns how many values it left to Optuna's own
    function (NaN, which gives NaN with its warning, and values whose square overflows, where
    Python raises OverflowError): ``out`` holds NaN there."""
    left = 0
    for i in range(a.size):
        v = a[i]
        if v > 6:
            out[i] = -_ndtr(-v)
        elif v > SERIES_BELOW:
            out[i] = math.log(_ndtr(v))
        elif v > SQUARE_OVERFLOWS:
            out[i] = _log_ndtr_series(v, two)
        else:
            out[i] = np.nan
            left += 1
    return left


def make_log_ndtr(series):
    """Optuna's ``_log_ndtr`` signature (an array in, a float array of its shape out), compiled;
    ``series`` is Optuna's original function, used for the values below -20."""

    def log_ndtr(a):
        a = np.asarray(a, dtype=np.float64)
        flat = np.ascontiguousarray(a).reshape(-1)
        out = np.empty_like(flat)
        if _log_ndtr_into(flat, out, 2.0):
            left = ~(flat > SQUARE_OVERFLOWS)
            out[left] = series(flat[left])
        return out.reshape(a.shape)

    log_ndtr.compiled_for_tpe = True
    return log_ndtr


def warm_up():
    """Load (or compile, the first time) the loop so no iteration pays for it."""
    _log_ndtr_into(np.array([-30.0, 0.0]), np.empty(2), 2.0)
