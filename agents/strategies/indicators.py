"""Vectorised technical indicators over float64 numpy arrays (no Python loop over bars).

Every output has the input's length and is causal: value i depends only on inputs 0..i,
bit for bit, whatever follows (block layouts are anchored at index 0 and sized by the
window, never by the array length). Where there is not enough history the value is NaN,
so comparisons against it are False and strategies stay flat during warm-up.

Inside ``with shared():`` (a batch of candidates of one template on the same bars) each
indicator is computed once per distinct input and window and reused: candidates with the same
slow window share its moving average. The cached arrays are read-only, so a signal that tried
to modify one in place would fail loudly instead of corrupting its neighbours.
"""

import contextvars
import functools
import math
from contextlib import contextmanager

import numpy as np

from agents.strategies import indicator_kernels

_shared = contextvars.ContextVar("shared_indicators", default=None)


@contextmanager
def shared():
    """Reuse indicator values across the signals computed inside the block (one batch)."""
    token = _shared.set({})
    try:
        yield
    finally:
        _shared.reset(token)


def _reused(fn):
    """Memoise ``fn(x, *args)`` inside :func:`shared`, keyed by the input array's identity."""

    @functools.wraps(fn)
    def wrapper(x, *args):
        cache = _shared.get()
        if cache is None:
            return fn(x, *args)
        key = (fn.__name__, id(x), args)
        hit = cache.get(key)
        if hit is None:
            value = fn(x, *args)
            for array in value if isinstance(value, tuple) else (value,):
                if isinstance(array, np.ndarray):  # not a numpy scalar (a scalar price's tolerance)
                    array.flags.writeable = False
            # The entry holds x, so its id cannot be reused by another array while the cache lives.
            hit = cache[key] = (x, value)
        return hit[1]

    return wrapper

# EMA blocks are sized so that decay**-k stays below e**_EMA_BLOCK_LOG (~1e130): large
# enough to keep a block's carry into the block after next below 1e-130 (negligible),
# small enough never to overflow float64 for any price-like input.
_EMA_BLOCK_LOG = 300.0


def _as_float(x):
    return np.asarray(x, dtype=np.float64)


@_reused
def rolling_sum(x, n):
    """Sum of the last n values (NaN for the first n-1 bars).

    A prefix sum over the whole array would carry an error proportional to the running
    total (millions of bars x price). Instead the prefix sum restarts every n bars, so a
    window is "its block's prefix + the tail of the previous block" and the error stays
    proportional to n x |x|.
    """
    x = _as_float(x)
    size = len(x)
    n = int(n)
    if n < 1:
        raise ValueError("window must be >= 1")
    if n > size:
        return np.full(size, np.nan)
    # With blocks of exactly n, the window ending at (block b, offset r) is block b's prefix up to
    # r plus block b-1's elements after r; one compiled pass (indicator_kernels says why).
    return indicator_kernels.rolling_sum_blocked(np.ascontiguousarray(x), n, np.empty(size))


@_reused
def sma(x, n):
    """Simple moving average over the last n bars."""
    # Divided in place: a batch keeps every window's average, not also its sum.
    out = rolling_sum.__wrapped__(x, n)
    out /= n
    return out


@_reused
def rolling_mean_std(x, n):
    """Mean and population standard deviation (ddof=0) of the last n bars, as for Bollinger bands.

    Computed as E[(x-c)^2] - E[x-c]^2 on values centred by c = x[0] (a causal constant), which
    keeps the cancellation to the scale of the price's range rather than its level.
    """
    x = _as_float(x)
    if len(x) == 0:
        return x.copy(), x.copy()
    centred = x - x[0]
    mean = rolling_sum(centred, n) / n
    var = rolling_sum(centred * centred, n) / n - mean * mean
    return mean + x[0], np.sqrt(np.maximum(var, 0.0))


def rolling_std(x, n):
    """Population standard deviation (ddof=0) of the last n bars."""
    return rolling_mean_std(x, n)[1]


def ema(x, alpha, init=None):
    """Exponential moving average y[i] = alpha*x[i] + (1-alpha)*y[i-1], with y[-1] = init.

    init defaults to x[0] (so y[0] = x[0], pandas' ewm(adjust=False) convention).

    The recursion has the closed form y[i] = b^(i+1)*init + alpha * sum_k b^(i-k) x[k] with
    b = 1-alpha. Within a block of L bars it is a cumulative sum of x[k]*b^-k rescaled by b^i;
    L is chosen so b^-L stays finite (~1e130). Blocks are rows of a matrix, all solved at once;
    each block then adds b^(i+1) times the previous block's last value. That carry is the
    previous block's own sum plus b^L (~1e-130) times older history, so it needs no recursion.
    """
    x = _as_float(x)
    size = len(x)
    alpha = float(alpha)
    if not 0.0 < alpha <= 1.0:
        raise ValueError("alpha must be in (0, 1]")
    if size == 0:
        return x.copy()
    init = float(x[0]) if init is None else float(init)
    if alpha == 1.0:
        return x.copy()
    decay = 1.0 - alpha
    length = min(size, max(1, int(_EMA_BLOCK_LOG / -math.log(decay))))
    blocks = -(-size // length)
    padded = np.zeros(blocks * length)
    padded[:size] = x
    k = np.arange(length, dtype=np.float64)
    grow = alpha * np.power(decay, -k)
    shrink = np.power(decay, k)
    local = padded.reshape(blocks, length)
    local *= grow
    np.cumsum(local, axis=1, out=local)
    # Carry entering each block: the previous block's final value (block 0: init). A block's
    # final value is its own sum plus decay**length (< 1e-130) times the carry before it;
    # one such term is kept, older ones are below 1e-260.
    ends = local[:, -1] * shrink[-1]
    ends[0] += decay**length * init
    ends[1:] += decay**length * ends[:-1]
    carry = np.empty(blocks)
    carry[0] = init
    carry[1:] = ends[:-1]
    local += (decay * carry)[:, None]
    local *= shrink
    return padded[:size]


@_reused
def ema_span(x, span):
    """EMA with the conventional alpha = 2 / (span + 1)."""
    return ema(x, 2.0 / (float(span) + 1.0))


@_reused
def rsi(close, n):
    """Wilder's RSI over n bars, 0..100 (NaN for the first n bars).

    Average gain/loss are seeded with the simple mean of the first n changes, then smoothed
    with Wilder's recursion avg = (avg*(n-1) + value)/n, i.e. an EMA with alpha = 1/n.
    A window with no movement at all reads 50; one with gains only reads 100.
    """
    close = _as_float(close)
    size = len(close)
    n = int(n)
    if n < 1:
        raise ValueError("period must be >= 1")
    out = np.full(size, np.nan)
    if size <= n:
        return out
    change = np.diff(close)
    gain = np.maximum(change, 0.0)
    loss = np.maximum(-change, 0.0)
    # change[j] is the move into bar j+1: bar n's averages are the plain means of the first
    # n moves, and Wilder's smoothing takes over from bar n+1.
    avg_gain = np.empty(size - n)
    avg_loss = np.empty(size - n)
    avg_gain[0] = gain[:n].mean()
    avg_loss[0] = loss[:n].mean()
    avg_gain[1:] = ema(gain[n:], 1.0 / n, init=avg_gain[0])
    avg_loss[1:] = ema(loss[n:], 1.0 / n, init=avg_loss[0])
    total = avg_gain + avg_loss
    value = np.full(size - n, 50.0)
    np.divide(100.0 * avg_gain, total, out=value, where=total > 0)
    out[n:] = value
    return out


def _rolling_extreme(x, n, op):
    """op-reduce (np.maximum / np.minimum) the last n values by window doubling: O(N log n)."""
    x = _as_float(x)
    size = len(x)
    n = int(n)
    if n < 1:
        raise ValueError("window must be >= 1")
    out = np.full(size, np.nan)
    if n > size:
        return out
    # acc[i] = extreme of x[i-width+1 .. i] (valid for i >= width-1), width doubling to <= n.
    acc = x.copy()
    width = 1
    while width * 2 <= n:
        acc[width:] = op(acc[width:], acc[:-width])
        width *= 2
    # Two overlapping windows of `width` cover the n-bar window ending at i.
    shift = n - width
    out[n - 1 :] = op(acc[n - 1 :], acc[n - 1 - shift : size - shift])
    return out


@_reused
def rolling_max(x, n):
    """Maximum of the last n values (including the current one)."""
    return _rolling_extreme(x, n, np.maximum)


@_reused
def rolling_min(x, n):
    """Minimum of the last n values (including the current one)."""
    return _rolling_extreme(x, n, np.minimum)


@_reused
def shift(x, periods=1):
    """x delayed by `periods` bars (NaN fill): shift(x)[i] = x[i-1]."""
    x = _as_float(x)
    out = np.full(len(x), np.nan)
    if periods < len(x):
        out[periods:] = x[: len(x) - periods]
    return out


# Vectorised sums and EMAs differ from exact arithmetic by ~1e-14 of the price level, so on a
# flat stretch "fast > slow" or "close < middle" would flip on rounding noise. Differences
# smaller than this fraction of the price count as ties: far below any real price move.
TIE_TOLERANCE = 1e-10


@_reused
def tie_tolerance(price):
    """The absolute difference below which two price-like values at this level are equal."""
    return TIE_TOLERANCE * np.abs(_as_float(price))


def tolerant_sign(diff, price):
    """+1 / -1 where diff is clearly positive / negative at this price level, 0 on a tie or NaN."""
    diff = np.ascontiguousarray(diff, dtype=np.float64)
    tol = np.ascontiguousarray(tie_tolerance(price))
    if diff.shape != tol.shape:
        diff, tol = np.broadcast_arrays(diff, tol)
        return (diff > tol).astype(np.float64) - (diff < -tol).astype(np.float64)
    return indicator_kernels.tolerant_sign_into(diff.ravel(), tol.ravel(), np.empty(diff.size)).reshape(diff.shape)


def latch(entry, exit):
    """Boolean state that switches on at an entry bar and off at the next exit bar.

    active[i] is True when the latest entry at or before i is later than the latest exit at
    or before i (an exit on the same bar as an entry wins). This is the vectorised form of
    "hold until": each event bar gets the code 2*(i+1) + (1 if entry else 0), other bars 0;
    a running maximum forward-fills the latest event, whose low bit is the state.
    """
    entry = np.asarray(entry, dtype=bool)
    exit = np.asarray(exit, dtype=bool)
    # int32 accumulates much faster than int64; it holds codes for up to ~1e9 bars.
    dtype = np.int32 if len(entry) < 2**30 - 1 else np.int64
    code = np.arange(2, 2 * len(entry) + 2, 2, dtype=dtype)
    code += entry & ~exit
    code *= entry | exit
    np.maximum.accumulate(code, out=code)
    return (code & 1).astype(bool)
