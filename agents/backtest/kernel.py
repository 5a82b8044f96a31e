"""The backtest engine's one simulation loop, compiled by numba: many target rows over one window.

Every backtest, single or batch, goes through :func:`simulate`; a single run is a batch of one
row. The rules it implements are the engine's (module docstring of :mod:`agents.backtest.engine`):
fills at the next open with the closed-form costs, stops and take-profits tied to a trade's first
fill, flat after a stop until the target changes, flips split into a close and an open, ruin, and
an open trade closed at the last close.

Why a compiled loop rather than numpy: a bar loop is the plain statement of the rules, and in a
batch every row is independent, so one call does all candidates on one window with no per-row
Python at all (the numpy engine paid ~150 us of fixed Python overhead per run; figures in
README). ``cache=True`` keeps the machine code under __pycache__, and :func:`warm_up` (called
when a worker process starts) loads or compiles it before any user request needs it.
"""

import numpy as np
from numba import njit

STOP, TAKE = 1, 2  # exit-reason codes, indices into engine.EXIT_REASONS
SIGNAL, END, RUIN = 0, 3, 4
# Trade fields, columns of the trades array (float64; indices and codes are exact in float64).
T_SIDE, T_ENTRY, T_EXIT, T_ENTRY_PRICE, T_EXIT_PRICE, T_RETURN, T_PNL, T_HELD, T_REASON, T_SIZE = range(10)
N_TRADE_FIELDS = 10
BAD_PRICE = -1  # status: a fill at a price that is not positive
FULL = -2  # status: a row has more trades than its room in ``trades`` (the caller gives more room)


@njit(cache=True, nogil=True)
def _record(trades, k, side, entry, exit_, entry_price, exit_price, entry_notional, pnl, reason, size):
    row = trades[k]
    row[T_SIDE] = side
    row[T_ENTRY] = entry
    row[T_EXIT] = exit_
    row[T_ENTRY_PRICE] = entry_price
    row[T_EXIT_PRICE] = exit_price
    row[T_RETURN] = pnl / entry_notional
    row[T_PNL] = pnl
    row[T_HELD] = exit_ - entry + (0 if reason == SIGNAL else 1)  # a stop bar (or the last bar) was held
    row[T_REASON] = reason
    row[T_SIZE] = size


@njit(cache=True, nogil=True)
def _fill(cash, units, px, weight, cost):
    """(equity, units, cash) just after trading at raw price px to ``weight`` of the post-trade equity.

    E'' = (E' + sc * units * px) / (1 + sc * weight) with sc = +-cost by the trade's direction:
    the engine's closed form for fee + slippage charged on the traded notional.
    """
    before = cash + units * px
    held = units * px
    sc = cost if weight * before - held >= 0.0 else -cost
    after = (before + sc * held) / (1.0 + sc * weight)
    new_units = weight * after / px
    return after, new_units, after - new_units * px


@njit(cache=True, nogil=True)
def simulate(o, h, lo, c, targets, stop_loss, take_profit, cost, slip, capital, equity, positions, returns, trades,
             counts):
    """Backtest every row of ``targets`` (rows x n, decided on each close) on one window.

    Writes ``equity``, ``positions`` and ``returns`` (rows x n), the trades of row r into
    ``trades[r * room : r * room + counts[r]]`` with room = len(trades) // rows (n is always
    enough: every trade has its own entry bar); ``stop_loss`` / ``take_profit`` are per row.
    Returns 0, BAD_PRICE when a fill would happen at a price that is not positive, or FULL when
    a row's trades outgrow its room.
    """
    rows, n = targets.shape
    room = len(trades) // rows if rows else 0
    for r in range(rows):
        target = targets[r]
        sl, tp = stop_loss[r], take_profit[r]
        base = r * room
        k = 0
        cash, units, held = capital, 0.0, 0.0  # held: the weight at the last close (0 after a stop)
        side, entry, entry_price, notional, before, size = 0.0, 0, 0.0, 0.0, 0.0, 0.0
        level_stop, level_take = 0.0, 0.0
        stopped = False
        previous = 0.0  # the desired weight of the bar before
        ruined = -1
        for t in range(n):
            desired = target[t - 1] if t > 0 else 0.0
            wanted = desired
            if stopped:
                if desired != previous:
                    stopped = False
                else:
                    wanted = 0.0
            previous = desired
            positions[r, t] = wanted
            if wanted != held:
                px = o[t]
                if not px > 0.0:
                    return BAD_PRICE
                if held * wanted < 0.0:  # a flip: close, then open at the same price
                    after, units, cash = _fill(cash, units, px, 0.0, cost)
                    if not after > 0.0:
                        ruined = t
                        break
                    if k == room:
                        return FULL
                    _record(trades, base + k, side, entry, t, entry_price, px * (1.0 - side * slip), notional,
                            after - before, SIGNAL, size)
                    k += 1
                    held = 0.0
                pre = cash  # flat: all cash, the equity just before an entry
                after, units, cash = _fill(cash, units, px, wanted, cost)
                if not after > 0.0:
                    ruined = t
                    break
                if held == 0.0:  # an entry
                    side = 1.0 if wanted > 0.0 else -1.0
                    entry, before, size = t, pre, abs(wanted)
                    entry_price = px * (1.0 + side * slip)
                    notional = abs(units) * entry_price
                    level_stop = entry_price * (1.0 - side * sl)
                    level_take = entry_price * (1.0 + side * tp)
                elif wanted == 0.0:  # an exit on a signal
                    if k == room:
                        return FULL
                    _record(trades, base + k, side, entry, t, entry_price, px * (1.0 - side * slip), notional,
                            after - before, SIGNAL, size)
                    k += 1
                held = wanted
            if held != 0.0 and (sl > 0.0 or tp > 0.0):
                # Stop first when one bar touches both; at the level, or at the open on a gap.
                why, price = 0, 0.0
                if side > 0.0:
                    if sl > 0.0 and lo[t] <= level_stop:
                        why, price = STOP, min(o[t], level_stop)
                    elif tp > 0.0 and h[t] >= level_take:
                        why, price = TAKE, max(o[t], level_take)
                else:
                    if sl > 0.0 and h[t] >= level_stop:
                        why, price = STOP, max(o[t], level_stop)
                    elif tp > 0.0 and lo[t] <= level_take:
                        why, price = TAKE, min(o[t], level_take)
                if why:
                    after, units, cash = _fill(cash, units, price, 0.0, cost)
                    if not after > 0.0:
                        ruined = t
                        break
                    if k == room:
                        return FULL
                    _record(trades, base + k, side, entry, t, entry_price, price * (1.0 - side * slip), notional,
                            after - before, why, size)
                    k += 1
                    held = 0.0
                    stopped = True
            value = cash + units * c[t]
            if not value > 0.0:
                ruined = t
                break
            equity[r, t] = value
            returns[r, t] = value / equity[r, t - 1] - 1.0 if t > 0 else 0.0
        if ruined >= 0:
            # Wiped out: equity 0 from that bar, flat after it, the open trade closed at its close.
            t = ruined
            equity[r, t:] = 0.0
            positions[r, t + 1 :] = 0.0
            returns[r, t] = -1.0 if t > 0 else 0.0
            returns[r, t + 1 :] = 0.0
            if held != 0.0 or units != 0.0:
                if k == room:
                    return FULL
                _record(trades, base + k, side, entry, t, entry_price, c[t], notional, -before, RUIN, size)
                k += 1
        elif held != 0.0:
            if k == room:
                return FULL
            _record(trades, base + k, side, entry, n - 1, entry_price, c[n - 1], notional,
                    equity[r, n - 1] - before, END, size)
            k += 1
        counts[r] = k
    return 0


def plain(array):
    """float64, C-contiguous and writeable: the one array type the kernels are compiled (and warmed
    up) for; a read-only cached column or a strided slice would otherwise compile another version."""
    if array.dtype == np.float64 and array.flags.c_contiguous and array.flags.writeable:
        return array
    return np.array(array, dtype=np.float64, order="C")


def rows_of(matrix):
    """``matrix`` as the kernel reads targets: float64 rows of contiguous values, e.g. a column slice
    ``targets[:, fold]`` of a batch's matrix without copying it (numba's "A" layout, warmed up too);
    anything else as :func:`plain`."""
    if (matrix.dtype == np.float64 and matrix.ndim == 2 and matrix.flags.writeable
            and matrix.strides[1] == matrix.itemsize and not matrix.flags.c_contiguous):
        return matrix
    return plain(matrix)


@njit(cache=True, nogil=True, inline="always")
def _moments_of(returns, skip, out):
    """mean, sum (r - mean)^2, ^3, ^4 and sum min(r, 0)^2 of ``returns[skip:]`` into out[0:5] (two
    passes: the mean first, so the deviations carry no cancellation)."""
    n = len(returns)
    t = n - skip
    total = 0.0
    for i in range(skip, n):
        total += returns[i]
    mean = total / t if t else 0.0
    s2 = s3 = s4 = down = 0.0
    for i in range(skip, n):
        x = returns[i]
        d = x - mean
        d2 = d * d
        s2 += d2
        s3 += d2 * d
        s4 += d2 * d2
        if x < 0.0:
            down += x * x
    out[0] = mean
    out[1] = s2
    out[2] = s3
    out[3] = s4
    out[4] = down


@njit(cache=True, nogil=True)
def central_moments(returns, out):
    """Per row of ``returns``: :func:`_moments_of` into the five columns of ``out``."""
    for r in range(returns.shape[0]):
        _moments_of(returns[r], 0, out[r])


@njit(cache=True, nogil=True, error_model="numpy")
def summaries(equity, returns, skip, positions, out):
    """Per row, everything the metrics read from the curves, in one call (no temporaries): into
    ``out[r]`` the growth E_last / E_0 (1 when E_0 <= 0), the five moments of ``returns[r, skip:]``
    (:func:`_moments_of`), the lowest equity / running peak (NaN if any is NaN) and the number of
    bars with a non-zero position."""
    rows, n = equity.shape
    for r in range(rows):
        row = out[r]
        e0 = equity[r, 0]
        row[0] = equity[r, n - 1] / e0 if e0 > 0.0 else 1.0
        _moments_of(returns[r], skip, row[1:6])
        peak = e0
        worst = 1.0
        for t in range(n):
            e = equity[r, t]
            if e > peak:
                peak = e
            ratio = e / peak  # IEEE division (error_model): 0 / 0 is NaN, as in numpy
            if ratio < worst or ratio != ratio:
                worst = ratio
                if ratio != ratio:
                    break
        row[6] = worst
        count = 0
        for t in range(positions.shape[1]):
            if positions[r, t] != 0.0:
                count += 1
        row[7] = count


@njit(cache=True, nogil=True)
def compound(returns, equity):
    """equity[r] = 1, then the running product of 1 + returns[r] (rows x T -> rows x T + 1): numpy's
    cumprod of 1 + r, in the same order, without its temporary and its slow strided loop."""
    rows, t = returns.shape
    for r in range(rows):
        value = 1.0
        equity[r, 0] = value
        for i in range(t):
            value = value * (1.0 + returns[r, i])
            equity[r, i + 1] = value


def warm_up():
    """Load (or compile, the first time) the kernel, so no request pays for it."""
    n = 4
    price = np.linspace(100.0, 103.0, n)
    out = np.empty((2, n))
    # Contiguous targets, and a column slice of two rows (one row would count as contiguous).
    for targets in (np.ones((2, n)), np.ones((2, n + 1))[:, 1:]):
        simulate(price, price, price, price, targets, np.zeros(2), np.zeros(2), 0.0, 0.0, 1.0, out,
                 np.empty((2, n)), np.empty((2, n)), np.empty((2 * n, N_TRADE_FIELDS)), np.empty(2, dtype=np.int64))
    summaries(out, out, 1, out, np.empty((2, 8)))
    central_moments(out, np.empty((2, 5)))
    compound(out, np.empty((2, n + 1)))
