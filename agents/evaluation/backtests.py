"""Backtesting one parameter set under the protocol: on every selection fold, and on the exam.

:func:`evaluate_selection` is all the search may see. :func:`evaluate_sealed` reads the exam and
is called only by :mod:`agents.evaluation.exam` on behalf of a gate.

Selection score of a parameter set with fold objectives s_1..s_K (the agent's objective on each
fold, a fold that cannot be scored counting 0):

    score = mean(s) - sd(s) / sqrt(K)          (sd with ddof = 1)

the mean less one standard error of the mean: a lower confidence bound that falls as the folds
disagree, so a set that shines in one regime and fails in the others ranks below a steady one
with the same mean.

Selection metrics are the metrics of the folds' returns put end to end (each fold starts flat and
at the initial capital, so the stitched equity is the product of the folds' growth); their
per-bar Sharpe statistics (:class:`agents.evaluation.statistics.SharpeStats`) feed the deflated
Sharpe ratio and the paired improvement test.
"""

import math
import time
from dataclasses import dataclass

import numpy as np

from agents.backtest.engine import run_backtest
from agents.backtest.metrics import compute_metrics
from agents.evaluation.numbers import finite_or_none
from agents.evaluation.statistics import SharpeStats, sharpe_stats
from config.observability import metrics as lab_metrics


def score_of(metrics, objective):
    """The agent's objective read from a metrics dict; 0.0 when missing or not finite."""
    value = finite_or_none((metrics or {}).get(objective))
    return 0.0 if value is None else value


def selection_score(fold_scores):
    """mean(s) - sd(s) / sqrt(K); see the module docstring."""
    s = np.asarray(fold_scores, dtype=np.float64)
    if len(s) == 0:
        return 0.0
    if len(s) == 1:
        return float(s[0])
    return float(s.mean() - s.std(ddof=1) / math.sqrt(len(s)))


def costs_of(agent, params, bars_per_year):
    return {
        "fee_bps": agent.fee_bps,
        "slippage_bps": agent.slippage_bps,
        "bars_per_year": bars_per_year,
        "stop_loss": params.get("stop_loss", 0.0),
        "take_profit": params.get("take_profit", 0.0),
        "initial_capital": agent.initial_capital,
    }


@dataclass(frozen=True)
class SelectionEvaluation:
    params: dict
    fold_metrics: list  # one metrics dict per fold, oldest first
    fold_scores: list
    score: float  # the selection score
    metrics: dict  # metrics of the stitched fold returns (in-sample for the search)
    stats: SharpeStats  # per-bar Sharpe statistics of the stitched returns
    returns: np.ndarray  # the stitched per-bar returns (what PBO and the paired test read)
    recent_trades: list  # the last fold's trades (TradeRecord), newest last
    target: np.ndarray  # target positions over all bars (reused if the exam is read)


@dataclass(frozen=True)
class SealedEvaluation:
    metrics: dict
    score: float
    trades: list
    returns: np.ndarray


def evaluate_selection(agent, template, params, bars, protocol, bars_per_year):
    """Backtest cleaned ``params`` on every fold of ``protocol``; nothing from the test window."""
    started = time.perf_counter()
    target = template.target_positions(bars, params)
    costs = costs_of(agent, params, bars_per_year)
    fold_metrics, fold_scores, last = [], [], None
    returns, positions, trade_returns, trade_pnls = [], [np.zeros(1)], [], []
    for fold in protocol.folds:
        result = run_backtest(bars.slice(fold.start, fold.stop), target[fold], **costs)
        fold_metrics.append(result.metrics)
        fold_scores.append(score_of(result.metrics, agent.objective))
        # Each fold's returns after its first bar (returns[0] is the engine's placeholder).
        returns.append(result.returns[1:])
        positions.append(result.positions[1:])
        trade_returns.append(result.trade_table.return_pct)
        trade_pnls.append(result.trade_table.pnl)
        last = result
    returns = np.concatenate(returns)
    # The stitched curve: every fold starts at the previous fold's end (one unit of capital at first).
    equity = np.concatenate(([1.0], np.cumprod(1.0 + returns)))
    sel = protocol.selection
    closes = np.concatenate([bars.close[sel.start : sel.start + 1]] + [bars.close[f][1:] for f in protocol.folds])
    metrics = compute_metrics(
        equity, np.concatenate(([0.0], returns)), np.concatenate(positions), np.concatenate(trade_returns),
        np.concatenate(trade_pnls), closes, bars_per_year,
    )
    lab_metrics.backtest_observed(time.perf_counter() - started)
    return SelectionEvaluation(
        params=params, fold_metrics=fold_metrics, fold_scores=fold_scores,
        score=selection_score(fold_scores), metrics=metrics, stats=sharpe_stats(returns), returns=returns,
        recent_trades=last.trades[-10:] if last is not None else [], target=target,
    )


def evaluate_sealed(agent, template, params, bars, protocol, bars_per_year, *, target=None):
    """Backtest ``params`` on the sealed test window (warm-up from earlier bars only)."""
    if target is None:
        target = template.target_positions(bars, params)
    window = protocol.test
    result = run_backtest(bars.slice(window.start, window.stop), target[window],
                          **costs_of(agent, params, bars_per_year))
    return SealedEvaluation(metrics=result.metrics, score=score_of(result.metrics, agent.objective),
                            trades=result.trades, returns=result.returns[1:])
