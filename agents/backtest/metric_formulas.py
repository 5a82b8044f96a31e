"""The metric formulas per row: each scalar formula once, and the same formulas over many rows.

:mod:`agents.backtest.metrics` states the formulas; this module computes them from what
``kernel.summaries`` reads off each row's curves (growth, moment sums, lowest equity / peak,
bars with a position) and the trades' sums. :func:`finish` runs them elementwise in numpy for
many rows (a batch: all folds at once), :func:`finish_by_row` in Python floats for a few (a
single backtest, where numpy's ~40 calls would cost more than the rows): the same IEEE
operations in the same order, so the same bits (tests/agents/test_backtest_batch.py).
"""

import math

import numpy as np

from agents.evaluation.statistics import probabilistic_sharpe

PROFIT_FACTOR_CAP = 100.0
METRIC_CAP = 1e12
VECTOR_ROWS = 4  # from this many rows on, the formulas run elementwise in numpy


def finite(value):
    """``value`` as a float that JSON accepts: NaN -> 0.0, clipped to +-METRIC_CAP."""
    value = float(value)
    if -METRIC_CAP <= value <= METRIC_CAP:
        return value
    if value != value:  # NaN
        return 0.0
    return METRIC_CAP if value > 0 else -METRIC_CAP


def _cagr(growth, years):
    if years <= 0:
        return 0.0
    if growth <= 0:
        return -1.0
    exponent = math.log(growth) / years
    if exponent > math.log1p(METRIC_CAP):  # would overflow: a tiny window
        return METRIC_CAP
    return finite(math.expm1(exponent))


def calmar_ratio(cagr_value, max_drawdown_value):
    """CAGR / max drawdown; 0 when there is no drawdown."""
    if max_drawdown_value <= 0:
        return 0.0
    return finite(cagr_value / max_drawdown_value)


def _sharpe(t, mean, sd, bars_per_year):
    if t < 2 or sd == 0.0:
        return 0.0
    return finite(mean / sd * math.sqrt(bars_per_year))


def _sortino(t, mean, downside, bars_per_year):
    if t < 1 or downside == 0.0:
        return 0.0
    return finite(mean / downside * math.sqrt(bars_per_year))


def _psr(t, mean, sd, m2, m3, m4, benchmark_sharpe=0.0):
    # The moments come from _moments (one pass, shared with the other metrics); the formula
    # itself lives once, in agents.evaluation.statistics.
    if t < 3 or sd == 0.0 or m2 <= 0.0:
        return 0.0
    return finite(probabilistic_sharpe(mean / sd, t, m3 / m2**1.5, m4 / (m2 * m2), benchmark_sharpe))


def _profit_factor(gross_profit, gross_loss):
    if gross_profit <= 0:
        return 0.0
    if gross_loss <= 0:
        return PROFIT_FACTOR_CAP
    return finite(min(gross_profit / gross_loss, PROFIT_FACTOR_CAP))


def finish_by_row(sums, per_row, trades, bars_per_year):
    """:func:`finish` with each row's formulas in Python floats (the same operations, the same bits)."""
    rows = []
    stats = _trade_stats_by_row(*trades, len(sums))
    for (growth, mean, ss, s3, s4, down, worst, active), (t, n, width, buy_hold), trade in zip(
            sums.tolist(), per_row.tolist(), stats, strict=True):
        t, n = int(t), int(n)
        sd = math.sqrt(ss / (t - 1)) if t > 1 else 0.0
        flat = sd <= 1e-12 * abs(mean) or sd < 1e-300
        if flat:
            sd = 0.0
        m2 = ss / t if t else 0.0
        m3 = s3 / t if t and not flat else 0.0
        m4 = s4 / t if t and not flat else 0.0
        downside = math.sqrt(down / t) if t else 0.0
        cagr_value = _cagr(growth, (n - 1) / bars_per_year)
        mdd = finite(max(0.0, 1.0 - worst)) if n >= 2 and worst == worst else 0.0
        count, win, pf, avg, best, worst_trade = trade
        values = (finite(growth - 1.0), cagr_value, _sharpe(t, mean, sd, bars_per_year),
                  _sortino(t, mean, downside, bars_per_year), mdd, calmar_ratio(cagr_value, mdd), win, count, pf, avg,
                  active / width if width else 0.0, avg, best, worst_trade, buy_hold, _psr(t, mean, sd, m2, m3, m4))
        rows.append(values)
    return [list(column) for column in zip(*rows, strict=True)]


def _trade_stats_by_row(q, pnls, rows_of, rows):
    """:func:`_trade_stats` as one tuple per row: the same sums (np.bincount), the rest in Python."""
    count, n_wins, gross_profit, net, total_q, best, worst = _trade_sums(q, pnls, rows_of, rows)
    out = []
    for k, wins, gp, total, row_net, hi, lo in zip(count.tolist(), n_wins.tolist(), gross_profit.tolist(),
                                                   total_q.tolist(), net.tolist(), best.tolist(), worst.tolist(),
                                                   strict=True):
        if not k:
            out.append((0.0, 0.0, 0.0, 0.0, 0.0, 0.0))
            continue
        # Gross loss = gross profit - net (zero-P&L trades add nothing to either).
        out.append((float(k), wins / k, _profit_factor(gp, gp - row_net), finite(total / k), finite(hi), finite(lo)))
    return out


def _trade_sums(q, pnls, rows_of, rows):
    """Per row: #trades, #winners, gross profit, net P&L, sum of net returns, best and worst return."""
    count = np.bincount(rows_of, minlength=rows)
    wins = pnls > 0
    n_wins = np.bincount(rows_of, weights=wins, minlength=rows)
    gross_profit = np.bincount(rows_of, weights=np.where(wins, pnls, 0.0), minlength=rows)
    net = np.bincount(rows_of, weights=pnls, minlength=rows)
    total_q = np.bincount(rows_of, weights=q, minlength=rows)
    best = np.full(rows, -np.inf)
    worst = np.full(rows, np.inf)
    np.maximum.at(best, rows_of, q)
    np.minimum.at(worst, rows_of, q)
    return count, n_wins, gross_profit, net, total_q, best, worst


def _finite(values):
    """:func:`finite` of every value of an array."""
    out = np.clip(values, -METRIC_CAP, METRIC_CAP)
    out[np.isnan(values)] = 0.0
    return out


def _guarded(condition, numerator, denominator):
    """finite(numerator / denominator) where ``condition``, else 0 (no division where it fails)."""
    out = np.zeros(len(numerator))
    np.divide(numerator, denominator, out=out, where=condition)
    return _finite(out)


def finish(sums, per_row, trades, bars_per_year):
    """The METRIC_KEYS columns (lists, in that order) of rows summarised by ``kernel.summaries``;
    every formula is the one of the single-series functions above, elementwise (same IEEE operations
    in the same order, so the same bits; only log, expm1 and erf stay per row, in ``math``)."""
    rows = len(sums)
    t, n, width, buy_hold = per_row.T
    growth, mean, ss, s3, s4, down, worst, active = sums.T
    has_t = t > 0
    sd = np.sqrt(np.divide(ss, t - 1, out=np.zeros(rows), where=t > 1))
    # Relative test: a constant series leaves float dust of ~1e-17 * |mean| in the deviations.
    flat = (sd <= 1e-12 * np.abs(mean)) | (sd < 1e-300)
    sd[flat] = 0.0
    m2 = np.divide(ss, t, out=np.zeros(rows), where=has_t)
    m3 = np.divide(s3, t, out=np.zeros(rows), where=has_t & ~flat)
    m4 = np.divide(s4, t, out=np.zeros(rows), where=has_t & ~flat)
    downside = np.sqrt(np.divide(down, t, out=np.zeros(rows), where=has_t))
    root_k = math.sqrt(bars_per_year)
    sharpe = np.zeros(rows)
    ok = (t >= 2) & (sd != 0.0)
    np.divide(mean, sd, out=sharpe, where=ok)
    sharpe = np.where(ok, _finite(sharpe * root_k), 0.0)
    sortino = np.zeros(rows)
    ok = has_t & (downside != 0.0)
    np.divide(mean, downside, out=sortino, where=ok)
    sortino = np.where(ok, _finite(sortino * root_k), 0.0)
    mdd = np.where((n >= 2) & (worst == worst), _finite(np.maximum(0.0, 1.0 - worst)), 0.0)
    years = ((n - 1) / bars_per_year).tolist()
    cagr_values = [_cagr(g, y) for g, y in zip(growth.tolist(), years, strict=True)]
    cagr_array = np.array(cagr_values)
    calmar = _guarded(mdd > 0.0, cagr_array, mdd)
    psr = [_psr(tt, mu, s, a, b, c) if s != 0.0 and tt >= 3 else 0.0 for tt, mu, s, a, b, c in zip(
        t.astype(np.int64).tolist(), mean.tolist(), sd.tolist(), m2.tolist(), m3.tolist(), m4.tolist(), strict=True)]
    count, win, pf, avg, best, worst_trade = _trade_stats(*trades, rows)
    exposure_values = np.divide(active, width, out=np.zeros(rows), where=width > 0)
    return (_finite(growth - 1.0).tolist(), cagr_values, sharpe.tolist(), sortino.tolist(), mdd.tolist(),
            calmar.tolist(), win, count, pf, avg, exposure_values.tolist(), avg, best, worst_trade, buy_hold.tolist(),
            psr)


def _trade_stats(q, pnls, rows_of, rows):
    """Per row: (#trades, win rate, profit factor, average, best, worst net trade return), as lists."""
    count, n_wins, gross_profit, net, total_q, best, worst = _trade_sums(q, pnls, rows_of, rows)
    count = count.astype(np.float64)
    any_trade = count > 0
    win = np.divide(n_wins, count, out=np.zeros(rows), where=any_trade)
    # Gross loss = gross profit - net (zero-P&L trades add nothing to either); as _profit_factor.
    gross_loss = gross_profit - net
    pf = np.zeros(rows)
    np.divide(gross_profit, gross_loss, out=pf, where=gross_loss > 0)
    pf = _finite(np.minimum(pf, PROFIT_FACTOR_CAP))
    pf[gross_loss <= 0] = PROFIT_FACTOR_CAP
    pf[gross_profit <= 0] = 0.0
    pf[~any_trade] = 0.0
    avg = _guarded(any_trade, total_q, count)
    best = np.where(any_trade, _finite(best), 0.0)
    worst = np.where(any_trade, _finite(worst), 0.0)
    return count.tolist(), win.tolist(), pf.tolist(), avg.tolist(), best.tolist(), worst.tolist()
