"""Paper metrics: the backtest's metric functions (agents.backtest.metrics) on the paper account.

The equity curve is the account's equity points (the opening bar first, at the initial
capital); trades are the closed paper trades plus the open one marked to the last close without
exit costs, as the backtest counts a trade still open at the end of its data. Buy-and-hold runs
from the second point's open to the last close, as in the backtest.
"""

import numpy as np

from agents.backtest.metrics import compute_metrics, empty_metrics
from agents.evaluation.statistics import sharpe_stats
from agents.market.cache import load_bars
from graduation.models import PaperEquityPoint, PaperTrade
from graduation.trading.accounts import state_of, to_datetime64
from graduation.trading.engine import open_trade_mark


def curve(account):
    """(timestamps, equity, positions, targets) of the account, oldest first (one query)."""
    rows = list(
        PaperEquityPoint.objects.filter(account=account).order_by("timestamp")
        .values_list("timestamp", "equity", "position", "target")
    )
    if not rows:
        return [], np.empty(0), np.empty(0), np.empty(0)
    stamps, equity, positions, targets = zip(*rows, strict=True)
    return list(stamps), np.array(equity, dtype=np.float64), np.array(positions), np.array(targets)


def trade_columns(account):
    """(returns, pnls) of the closed trades and, last, the open one (one query)."""
    rows = list(PaperTrade.objects.filter(account=account).order_by("exit_time", "id").values_list("return_pct", "pnl"))
    mark = open_trade_mark(state_of(account))
    if mark is not None:
        rows.append((mark[1], mark[0]))
    returns = np.array([r for r, _p in rows], dtype=np.float64)
    pnls = np.array([p for _r, p in rows], dtype=np.float64)
    return returns, pnls


def bar_window(instrument_id, stamps):
    """The instrument's bars at exactly these timestamps (a contiguous run), or None if they changed."""
    if not stamps:
        return None
    bars = load_bars(instrument_id)
    start = int(np.searchsorted(bars.timestamps, to_datetime64(stamps[0])))
    window = bars.slice(start, start + len(stamps))
    if len(window) != len(stamps):
        return None
    wanted = np.array([to_datetime64(s) for s in stamps], dtype="datetime64[ns]")
    return window if np.array_equal(window.timestamps, wanted) else None


def account_metrics(account):
    """Every metric of agents.backtest.metrics.METRIC_KEYS for the account."""
    stamps, equity, positions, _targets = curve(account)
    if len(equity) == 0:
        return empty_metrics()
    returns = np.zeros(len(equity))
    if len(equity) > 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            returns[1:] = np.where(equity[:-1] > 0, equity[1:] / equity[:-1] - 1.0, 0.0)
    trade_returns, trade_pnls = trade_columns(account)
    window = bar_window(account.agent.instrument_id, stamps)
    close, open_ = (window.close, window.open) if window is not None else (equity, None)
    metrics = compute_metrics(equity, returns, positions, trade_returns, trade_pnls, close,
                              account.agent.instrument.bars_per_year, open_)
    if window is None:
        metrics["buy_hold_return"] = 0.0  # the bars changed under the account; no honest benchmark
    return metrics


def account_sharpe_stats(account):
    """Per-bar Sharpe statistics of the account's equity returns (agents.evaluation.statistics)."""
    _stamps, equity, _positions, _targets = curve(account)
    if len(equity) < 2:
        return sharpe_stats([])
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = np.where(equity[:-1] > 0, equity[1:] / equity[:-1] - 1.0, 0.0)
    return sharpe_stats(returns)
