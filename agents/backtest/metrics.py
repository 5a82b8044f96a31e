"""Performance metrics: defined once here, used by the backtest engine and paper trading.

Pure numpy + ``math``; no Django, no scipy. Every function returns a plain finite
``float`` (JSON-safe). Notation: ``E_0..E_{N-1}`` the equity marked to each bar's close,
``r_1..r_T`` the bar-to-bar simple returns ``r_i = E_i / E_{i-1} - 1`` (``T = N - 1``; the
engine's ``returns[0]`` is a placeholder 0 for the first bar and is not a return),
``mean`` and ``sd`` the sample mean and standard deviation (``ddof=1``) of ``r``,
``k`` = bars per year, trades' net returns ``q_j`` and net P&L ``pnl_j``.

Formulas (keys of :data:`METRIC_KEYS`):

- ``total_return``  = E_{N-1} / E_0 - 1
- ``cagr``          = (E_{N-1} / E_0) ** (1 / years) - 1 with years = T / k;
  -1 when the equity ends at or below 0, 0 when T = 0.
- ``sharpe``        = mean / sd * sqrt(k); 0 when T < 2 or sd = 0 (risk-free rate 0). sd
  counts as 0 when below 1e-12 x |mean|: the float dust a constant series leaves.
- ``sortino``       = mean / dd * sqrt(k), dd = sqrt(sum(min(r_i, 0)^2) / T) (downside
  deviation against 0 over all T returns); 0 when dd = 0.
- ``max_drawdown``  = max_i (1 - E_i / max_{j<=i} E_j), a positive fraction (0.25 = -25%).
- ``calmar``        = cagr / max_drawdown; 0 when max_drawdown = 0.
- ``win_rate``      = #{pnl_j > 0} / #trades; 0 without trades.
- ``num_trades``    = number of trades (closed ones, plus one still open at the end of the
  data, which the engine closes at the last close for the statistics).
- ``profit_factor`` = sum(pnl_j > 0) / |sum(pnl_j < 0)|, capped at :data:`PROFIT_FACTOR_CAP`
  (100), which is also its value when there are winners and no loser; 0 without winners.
- ``expectancy``    = mean(q_j) = win_rate * mean(winning q) + (1 - win_rate) * mean(other q),
  i.e. the average net return per trade; 0 without trades. Same number as ``avg_trade``:
  both names are kept because the API's metric names and the console use both.
- ``exposure``      = #{bars with position != 0} / N.
- ``avg_trade`` / ``best_trade`` / ``worst_trade`` = mean / max / min of q_j; 0 without trades.
- ``buy_hold_return`` = close[N-1] / open[1] - 1: buying at the first price the strategy
  could trade at (bar 1's open: a position decided on bar 0's close is filled there) and
  holding to the last close, without costs. Without opens: close[N-1] / close[0] - 1.
- ``psr``           = probabilistic Sharpe ratio (Bailey & Lopez de Prado, 2012) against a
  benchmark Sharpe SR* = 0: Phi((SR - SR*) * sqrt(T - 1) / sqrt(1 - g3 * SR + (g4 - 1) / 4 * SR^2))
  with SR = mean / sd the per-bar (not annualised) Sharpe, g3 = m3 / m2^1.5 the skewness and
  g4 = m4 / m2^2 the (non-excess, normal = 3) kurtosis, m_p = sum((r_i - mean)^p) / T, Phi the
  standard normal CDF. 0 when T < 3 or sd = 0. It reads as the probability that the true
  Sharpe ratio is above 0. The formula is
  :func:`agents.evaluation.statistics.probabilistic_sharpe`; the moments are computed here.

Any value that would still be non-finite becomes 0.0, and magnitudes are capped at
:data:`METRIC_CAP` (a tiny window can make CAGR astronomically large).
"""

import math

import numpy as np

from agents.backtest import kernel
from agents.evaluation.statistics import probabilistic_sharpe

METRIC_KEYS = (
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "win_rate",
    "num_trades",
    "profit_factor",
    "expectancy",
    "exposure",
    "avg_trade",
    "best_trade",
    "worst_trade",
    "buy_hold_return",
    "psr",
)

PROFIT_FACTOR_CAP = 100.0
METRIC_CAP = 1e12
_SQRT2 = math.sqrt(2.0)


def finite(value):
    """``value`` as a float that JSON accepts: NaN -> 0.0, clipped to +-METRIC_CAP."""
    value = float(value)
    if -METRIC_CAP <= value <= METRIC_CAP:
        return value
    if value != value:  # NaN
        return 0.0
    return METRIC_CAP if value > 0 else -METRIC_CAP


def empty_metrics():
    """Every metric at 0.0: what an empty window reports."""
    return dict.fromkeys(METRIC_KEYS, 0.0)


def normal_cdf(z):
    """Standard normal CDF, Phi(z) = (1 + erf(z / sqrt(2))) / 2."""
    return 0.5 * (1.0 + math.erf(z / _SQRT2))


# --- equity-curve metrics --------------------------------------------------------------


def total_return(equity):
    """E_{N-1} / E_0 - 1."""
    if len(equity) < 2 or equity[0] <= 0:
        return 0.0
    return finite(equity[-1] / equity[0] - 1.0)


def cagr(equity, bars_per_year):
    """Compound annual growth rate; years = (N - 1) / bars_per_year."""
    if len(equity) < 2 or equity[0] <= 0:
        return 0.0
    return _cagr(float(equity[-1] / equity[0]), (len(equity) - 1) / bars_per_year)


def _cagr(growth, years):
    if years <= 0:
        return 0.0
    if growth <= 0:
        return -1.0
    exponent = math.log(growth) / years
    if exponent > math.log1p(METRIC_CAP):  # would overflow: a tiny window
        return METRIC_CAP
    return finite(math.expm1(exponent))


def max_drawdown(equity):
    """Largest peak-to-trough fall, as a positive fraction of the peak."""
    equity = np.asarray(equity, dtype=np.float64)
    return _drawdown_exposure_rows(equity[None, :], equity[None, :])[0][0]


def calmar_ratio(cagr_value, max_drawdown_value):
    """CAGR / max drawdown; 0 when there is no drawdown."""
    if max_drawdown_value <= 0:
        return 0.0
    return finite(cagr_value / max_drawdown_value)


def exposure(positions):
    """Share of bars with a non-zero position."""
    n = len(positions)
    return float(np.count_nonzero(positions)) / n if n else 0.0


def buy_hold_return(close, open_=None):
    """close[-1] / open_[1] - 1 (first tradable price to last close); close-to-close without opens."""
    if len(close) < 2:
        return 0.0
    start = open_[1] if open_ is not None else close[0]
    if not start > 0:
        return 0.0
    return finite(close[-1] / start - 1.0)


# --- return-distribution metrics --------------------------------------------------------
# `returns` here are the T bar-to-bar returns (drop the engine's leading placeholder).


def _moments(returns):
    """(T, mean, sd ddof=1, m2, m3, m4 population central moments, downside deviation) of one series."""
    r = np.asarray(returns, dtype=np.float64)
    t = len(r)
    if not t:
        return 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    sums = np.empty((1, 5))
    kernel.central_moments(kernel.plain(r[None, :]), sums)
    mean, ss, s3, s4, down = sums[0].tolist()
    sd = math.sqrt(ss / (t - 1)) if t > 1 else 0.0
    # Relative test: a constant series leaves float dust of ~1e-17 * |mean| in the deviations.
    flat = sd <= 1e-12 * abs(mean) or sd < 1e-300
    if flat:
        sd = 0.0
    return t, mean, sd, ss / t, 0.0 if flat else s3 / t, 0.0 if flat else s4 / t, math.sqrt(down / t)


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


def sharpe_ratio(returns, bars_per_year=1.0):
    """Annualised Sharpe: mean / sd (ddof=1) * sqrt(bars_per_year); 0 when sd = 0."""
    t, mean, sd, *_ = _moments(returns)
    return _sharpe(t, mean, sd, bars_per_year)


def sortino_ratio(returns, bars_per_year=1.0):
    """Annualised Sortino: mean / sqrt(mean(min(r, 0)^2)) * sqrt(bars_per_year); 0 without downside."""
    t, mean, _sd, _m2, _m3, _m4, downside = _moments(returns)
    return _sortino(t, mean, downside, bars_per_year)


def probabilistic_sharpe_ratio(returns, benchmark_sharpe=0.0):
    """P(true per-bar Sharpe > benchmark_sharpe), Bailey & Lopez de Prado (2012)."""
    t, mean, sd, m2, m3, m4, _ = _moments(returns)
    return _psr(t, mean, sd, m2, m3, m4, benchmark_sharpe)


# --- trade metrics ----------------------------------------------------------------------


def win_rate(trade_pnls):
    """Share of trades with positive net P&L."""
    n = len(trade_pnls)
    return float(np.count_nonzero(np.asarray(trade_pnls) > 0)) / n if n else 0.0


def profit_factor(trade_pnls):
    """Gross profit / gross loss, capped at PROFIT_FACTOR_CAP (also its value with no loser)."""
    pnls = np.asarray(trade_pnls, dtype=np.float64)
    if not len(pnls):
        return 0.0
    gross_profit = float(np.add.reduce(pnls[pnls > 0]))
    gross_loss = -float(np.add.reduce(pnls[pnls < 0]))
    return _profit_factor(gross_profit, gross_loss)


def _profit_factor(gross_profit, gross_loss):
    if gross_profit <= 0:
        return 0.0
    if gross_loss <= 0:
        return PROFIT_FACTOR_CAP
    return finite(min(gross_profit / gross_loss, PROFIT_FACTOR_CAP))


def expectancy(trade_returns):
    """Mean net return per trade."""
    return trade_return_stats(trade_returns)[0]


def trade_return_stats(trade_returns):
    """(average, best, worst) net trade return; zeros without trades."""
    n = len(trade_returns)
    if not n:
        return 0.0, 0.0, 0.0
    q = np.asarray(trade_returns, dtype=np.float64)
    return finite(np.add.reduce(q) / n), finite(np.maximum.reduce(q)), finite(np.minimum.reduce(q))


# --- all at once ------------------------------------------------------------------------


def compute_metrics(equity, returns, positions, trade_returns, trade_pnls, close, bars_per_year, open_=None):
    """Every metric of METRIC_KEYS, as JSON-safe floats: :func:`compute_metrics_rows` for one row.

    ``returns`` are the bar-to-bar returns of ``equity``: either N - 1 of them, or N with a
    leading placeholder (as the engine produces), which is dropped. ``open_`` (optional)
    gives the buy-and-hold entry price at bar 1's open; ``close`` its exit.
    """
    equity = np.asarray(equity, dtype=np.float64)
    pnls = np.asarray(trade_pnls, dtype=np.float64)
    return compute_metrics_rows(
        equity[None, :], np.asarray(returns, dtype=np.float64)[None, :], np.asarray(positions)[None, :],
        np.asarray(trade_returns, dtype=np.float64), pnls, np.zeros(len(pnls), dtype=np.int64), close,
        bars_per_year, open_,
    )[0]


def compute_metrics_rows(equity, returns, positions, trade_returns, trade_pnls, trade_rows, close, bars_per_year,
                         open_=None):
    """One metrics dict per row of ``equity`` (rows x N), computed column-wise over all rows at once.

    ``returns`` and ``positions`` are matrices of the same rows (returns with N - 1 columns, or N
    with the leading placeholder); the trades of every row are flat arrays, ``trade_rows`` giving
    each trade's row (rows in any order; within a row, the order of the trades).
    """
    window = (equity, returns, positions, trade_returns, trade_pnls, trade_rows, close, open_)
    return compute_metrics_windows([window], bars_per_year)[0]


def compute_metrics_windows(windows, bars_per_year, summaries=None):
    """:func:`compute_metrics_rows` of several windows at once (e.g. every fold of a batch): each
    window is the tuple (equity, returns, positions, trade_returns, trade_pnls, trade_rows, close,
    open_) of that function's arguments; one list of dicts per window. The windows' rows are
    finished together, so the numpy work is paid once per call rather than once per window.

    ``summaries`` (a list) receives each window's ``kernel.summaries`` matrix (None for an empty
    window): columns 1-5 are the moment sums, which the Sharpe statistics can reuse."""
    if bars_per_year <= 0:
        raise ValueError("bars_per_year: must be > 0")
    sums, per_row, trades, sizes = [], [], [], []
    offset = 0
    for equity, returns, positions, trade_returns, trade_pnls, trade_rows, close, open_ in windows:
        rows, n = equity.shape
        sizes.append(rows if n else -rows)  # an empty window reports empty_metrics()
        if not n:
            if summaries is not None:
                summaries.append(None)
            continue
        skip = returns.shape[1] - (n - 1)
        if skip not in (0, 1):
            raise ValueError(f"returns: expected {n - 1} or {n} values for {n} equity points, got {returns.shape[1]}")
        window_sums = np.zeros((rows, 8))
        if rows:
            kernel.summaries(kernel.plain(equity), kernel.plain(returns), skip, kernel.plain(np.asarray(positions)),
                             window_sums)
        sums.append(window_sums)
        if summaries is not None:
            summaries.append(window_sums)
        # Per row of this window: T, N, the positions' width, buy-and-hold.
        per_row.append(np.repeat([[n - 1, n, np.shape(positions)[1], buy_hold_return(close, open_)]],
                                 rows, axis=0))
        trades.append((np.asarray(trade_returns, dtype=np.float64), np.asarray(trade_pnls, dtype=np.float64),
                       np.asarray(trade_rows, dtype=np.int64) + offset))
        offset += rows
    if not offset:
        return [[empty_metrics() for _ in range(abs(rows))] for rows in sizes]
    sums, per_row = np.concatenate(sums), np.concatenate(per_row)
    # numpy's ~40 calls cost more than a few rows' Python: a single backtest finishes row by row.
    finish = _finish if offset >= _VECTOR_ROWS else _finish_by_row
    columns = finish(sums, per_row, [np.concatenate(c) for c in zip(*trades, strict=True)], bars_per_year)
    out, start = [], 0
    for rows in sizes:
        if rows <= 0:
            out.append([empty_metrics() for _ in range(-rows)])
            continue
        out.append([dict(zip(METRIC_KEYS, values, strict=True)) for values in zip(
            *(c[start : start + rows] for c in columns), strict=True)])
        start += rows
    return out


_VECTOR_ROWS = 4  # from this many rows on, the finishing formulas run elementwise in numpy


def _finish_by_row(sums, per_row, trades, bars_per_year):
    """:func:`_finish` with each row's formulas in Python floats (the same operations, the same bits)."""
    columns = [[] for _ in METRIC_KEYS]
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
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    return columns


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


def _finish(sums, per_row, trades, bars_per_year):
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


def _drawdown_exposure_rows(equity, positions):
    """Per row: (max drawdown, share of bars with a position), by one compiled pass."""
    rows, n = equity.shape
    sums = np.zeros((rows, 8))
    if n:
        kernel.summaries(kernel.plain(equity), kernel.plain(equity), 1, kernel.plain(positions), sums)
    lowest, active = sums[:, 6], sums[:, 7]
    drawdowns = [0.0] * rows if n < 2 else [finite(max(0.0, 1.0 - w)) if w == w else 0.0 for w in lowest.tolist()]
    width = positions.shape[1]
    return drawdowns, (active / width).tolist() if width else [0.0] * rows
