"""Stop-loss and take-profit exits for the backtest engine (the rules: engine module docstring).

Each same-side run of the target is one trade from its first bar, so a first pass finds
every run's first touch at once, vectorised over all bars. Only when a stop fires and the
target then changes within the same run (a re-entry) is the rest of the run followed trade
by trade, scanning forward in growing windows so that each trade costs O(bars held).
"""

import bisect

import numpy as np

STOP, TAKE = 1, 2  # exit-reason codes, indices into engine.EXIT_REASONS
_NO_STOPS = (np.empty(0, dtype=np.int64), np.empty(0), np.empty(0, dtype=np.int8))


def apply_stops(desired, o, h, lo, stop_loss, take_profit, slip):
    """(positions, held at each close, (stop bars, raw exit prices, reason codes)).

    ``desired[t]`` is the weight the target asks for during bar t; ``positions`` is it with
    the bars after a stop set flat until the target changes; ``held`` is also 0 on a stop bar
    (flat at its close). Exit prices are raw (before slippage).
    """
    n = len(desired)
    sign = np.sign(desired)
    cuts = np.not_equal(sign[1:], sign[:-1]).nonzero()[0]
    cuts += 1
    starts = np.concatenate(([0], cuts))
    ends = np.concatenate((cuts, [n]))
    side = sign[starts]
    fill = side * slip
    fill += 1.0
    fill *= o[starts]
    j, price, why = _first_exits(o, h, lo, starts, ends, side, fill, stop_loss, take_profit, n)
    hit = (j < n).nonzero()[0]
    if not len(hit):
        return desired, desired, _NO_STOPS
    j, price, why, run_end = j[hit], price[hit], why[hit], ends[hit]
    changes = np.not_equal(desired[1:], desired[:-1]).nonzero()[0]
    changes += 1
    # After a stop, flat until the target changes: the next change after the stop bar.
    resume = np.append(changes, n)[np.searchsorted(changes, j, "right")]
    pos = desired.copy()
    _flatten(pos, j + 1, resume)
    bars, prices, reasons = [j], [price], [why]
    again = (resume < run_end).nonzero()[0]  # the target changed within the run: re-enter there
    if len(again):
        extra = _follow(desired, pos, sign, o, h, lo, stop_loss, take_profit, slip, changes.tolist(), n,
                        resume[again].tolist(), run_end[again].tolist())
        bars.append(np.asarray(extra[0], dtype=np.int64))
        prices.append(np.asarray(extra[1], dtype=np.float64))
        reasons.append(np.asarray(extra[2], dtype=np.int8))
    bars, prices, reasons = np.concatenate(bars), np.concatenate(prices), np.concatenate(reasons)
    held = pos.copy()
    held[bars] = 0.0
    return pos, held, (bars, prices, reasons)


def _flatten(pos, starts, stops):
    """pos[starts[i]:stops[i]] = 0 for disjoint (possibly empty) ranges, without a Python loop."""
    n = len(pos)
    depth = np.bincount(starts, minlength=n + 1)
    depth -= np.bincount(stops, minlength=n + 1)
    np.cumsum(depth, out=depth)
    pos[depth[:n] > 0] = 0.0


def _first_touch(hit, starts, ends, n):
    """First bar with hit set in each [starts, ends), or n."""
    bars = hit.nonzero()[0]
    first = np.append(bars, n)[np.searchsorted(bars, starts)]
    first[first >= ends] = n
    return first


def _first_exits(o, h, lo, starts, ends, side, fill, stop_loss, take_profit, n):
    """(bar or n, raw price, reason) of every run's first stop / take-profit touch."""
    lengths = ends - starts
    longs, shorts = side > 0, side < 0
    any_long, any_short = bool(longs.any()), bool(shorts.any())
    m = len(starts)
    j_stop = j_take = np.full(m, n)
    if stop_loss > 0:
        level_stop = np.where(longs, fill * (1.0 - stop_loss), fill * (1.0 + stop_loss))
        # Stops: a long's low at or below its level, a short's high at or above.
        j_stop = _first_touch(_touches(lo, h, level_stop, longs, shorts, any_long, any_short, lengths),
                              starts, ends, n)
    if take_profit > 0:
        level_take = np.where(longs, fill * (1.0 + take_profit), fill * (1.0 - take_profit))
        # Take-profits: a long's high at or above its level, a short's low at or below.
        j_take = _first_touch(_touches(h, lo, level_take, longs, shorts, any_long, any_short, lengths, above=True),
                              starts, ends, n)
    use_stop = j_stop <= j_take  # a bar touching both: the stop is assumed first
    j = np.where(use_stop, j_stop, j_take)
    valid = j < n
    bar_open = o[np.where(valid, j, 0)]
    price = np.zeros(m)
    why = np.zeros(m, dtype=np.int8)
    if stop_loss > 0:
        # Long stop below: filled at the level, or at the open if it gapped below it.
        sel = valid & use_stop
        price[sel] = np.where(longs, np.minimum(bar_open, level_stop), np.maximum(bar_open, level_stop))[sel]
        why[sel] = STOP
    if take_profit > 0:
        sel = valid & ~use_stop
        price[sel] = np.where(longs, np.maximum(bar_open, level_take), np.minimum(bar_open, level_take))[sel]
        why[sel] = TAKE
    return j, price, why


def _touches(long_side, short_side, level, longs, shorts, any_long, any_short, lengths, above=False):
    """Per bar: does it reach its run's level? Long runs test ``long_side <= level`` (``>=``
    when ``above``), short runs ``short_side`` the other way; flat runs never touch."""
    hit = None
    if any_long:
        per_bar = np.repeat(np.where(longs, level, np.inf if above else -np.inf), lengths)
        hit = np.greater_equal(long_side, per_bar) if above else np.less_equal(long_side, per_bar)
    if any_short:
        per_bar = np.repeat(np.where(shorts, level, -np.inf if above else np.inf), lengths)
        short_hit = np.less_equal(short_side, per_bar) if above else np.greater_equal(short_side, per_bar)
        hit = short_hit if hit is None else np.logical_or(hit, short_hit, out=hit)
    return hit if hit is not None else np.zeros(len(long_side), dtype=bool)


def _follow(desired, pos, sign, o, h, lo, stop_loss, take_profit, slip, changes, n, entries, run_ends):
    """Trades re-entered within a run after a stop: one Python iteration per trade."""
    bars, prices, reasons = [], [], []
    for i, end in zip(entries, run_ends, strict=True):
        while i < end:
            side = 1.0 if sign[i] > 0 else -1.0
            fill = float(o[i]) * (1.0 + side * slip)
            j, price, why = _scan(o, h, lo, i, end, side, fill, stop_loss, take_profit)
            if j < 0:
                break
            bars.append(j)
            prices.append(price)
            reasons.append(why)
            k = bisect.bisect_right(changes, j)
            resume = changes[k] if k < len(changes) else n
            pos[j + 1 : resume] = 0.0
            i = resume
    return bars, prices, reasons


def _scan(o, h, lo, i, end, side, fill, stop_loss, take_profit):
    """First stop / take-profit touch of one trade in [i, end): (bar, raw price, reason) or (-1, 0, 0)."""
    level_stop = fill * (1.0 - side * stop_loss) if stop_loss > 0 else None
    level_take = fill * (1.0 + side * take_profit) if take_profit > 0 else None
    adverse, favourable = (lo, h) if side > 0 else (h, lo)
    step, a = 16, i
    while a < end:
        b = min(end, a + step)
        hit = None
        if level_stop is not None:
            window = adverse[a:b]
            hit = window <= level_stop if side > 0 else window >= level_stop
        if level_take is not None:
            window = favourable[a:b]
            take = window >= level_take if side > 0 else window <= level_take
            hit = take if hit is None else hit | take
        if hit.any():
            k = a + int(hit.argmax())
            bar_open = float(o[k])
            if level_stop is not None and (lo[k] <= level_stop if side > 0 else h[k] >= level_stop):
                return k, (min(bar_open, level_stop) if side > 0 else max(bar_open, level_stop)), STOP
            return k, (max(bar_open, level_take) if side > 0 else min(bar_open, level_take)), TAKE
        a, step = b, step * 4
    return -1, 0.0, 0
