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
from agents.backtest import metric_formulas as formulas
from agents.backtest.metric_formulas import (  # noqa: F401 (public here: the formulas are stated here)
    METRIC_CAP,
    PROFIT_FACTOR_CAP,
    _cagr,
    _profit_factor,
    _psr,
    _sharpe,
    _sortino,
    calmar_ratio,
    finite,
)

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

_SQRT2 = math.sqrt(2.0)


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


def max_drawdown(equity):
    """Largest peak-to-trough fall, as a positive fraction of the peak."""
    equity = np.asarray(equity, dtype=np.float64)
    return _drawdown_exposure_rows(equity[None, :], equity[None, :])[0][0]


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
    finish = formulas.finish if offset >= formulas.VECTOR_ROWS else formulas.finish_by_row
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
