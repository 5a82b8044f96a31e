"""Backtesting one parameter set under the protocol: on every selection fold, and on the exam.

:func:`evaluate_selection` is all the search may see. :func:`evaluate_sealed` reads the exam and
is called only by :mod:`agents.evaluation.exam` on behalf of a gate.

Selection score of a parameter set with fold objectives s_1..s_K (the agent's objective on each
fold, a fold that cannot be scored counting 0):

    score = mean(s) - sd(s) / sqrt(K)          (sd with ddof = 1)

the mean less one standard error of the mean: a lower confidence bound that falls as the folds
disagree, so a set that shines in one regime and fails in the others ranks below a steady one
with the same mean.

All the candidates of an iteration are evaluated together (:func:`evaluate_selections`): their
target positions are one matrix (shared indicators computed once), each fold is one engine call
over all of them, and the metrics are computed column-wise. :func:`evaluate_selection` is that
batch for one parameter set, so a set scores the same alone or among others.

Selection metrics are the metrics of the folds' returns put end to end (each fold starts flat and
at the initial capital, so the stitched equity is the product of the folds' growth); their
per-bar Sharpe statistics (:class:`agents.evaluation.statistics.SharpeStats`) feed the deflated
Sharpe ratio and the paired improvement test.
"""

import math
import time
from dataclasses import dataclass

import numpy as np

from agents.backtest import kernel
from agents.backtest.engine import run_backtest, run_batch
from agents.backtest.metrics import compute_metrics_windows
from agents.evaluation.numbers import finite_or_none
from agents.evaluation.statistics import SharpeStats, sharpe_stats_of_moments
from config.observability import metrics as lab_metrics


def score_of(metrics, objective):
    """The agent's objective read from a metrics dict; 0.0 when missing or not finite."""
    value = finite_or_none((metrics or {}).get(objective))
    return 0.0 if value is None else value


def selection_score(fold_scores):
    """mean(s) - sd(s) / sqrt(K); see the module docstring."""
    return selection_scores([fold_scores])[0]


def selection_scores(rows):
    """:func:`selection_score` of every row of fold scores (all rows with the same K), in one pass."""
    if not len(rows):
        return []
    s = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
    k = s.shape[1]
    if k == 0:
        return [0.0] * len(rows)
    if k == 1:
        return s[:, 0].tolist()
    return (s.mean(axis=1) - s.std(axis=1, ddof=1) / math.sqrt(k)).tolist()


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
    return evaluate_selections(agent, template, [params], bars, protocol, bars_per_year)[0]


def evaluate_selections(agent, template, params_list, bars, protocol, bars_per_year):
    """:func:`evaluate_selection` of every cleaned parameter set in ``params_list``, in one batch."""
    if not params_list:
        return []
    started = time.perf_counter()
    rows = len(params_list)
    targets = template.target_matrix(bars, params_list)
    costs = costs_of(agent, {}, bars_per_year)
    costs["stop_loss"] = [p.get("stop_loss", 0.0) for p in params_list]
    costs["take_profit"] = [p.get("take_profit", 0.0) for p in params_list]
    runs = [run_batch(bars.slice(fold.start, fold.stop), targets[:, fold], with_metrics=False, **costs)
            for fold in protocol.folds]
    # Each fold's returns after its first bar (returns[:, 0] is the engine's placeholder).
    returns = np.concatenate([run.returns[:, 1:] for run in runs], axis=1)
    positions = np.concatenate([np.zeros((rows, 1))] + [run.positions[:, 1:] for run in runs], axis=1)
    # The stitched curve: every fold starts at the previous fold's end (one unit of capital at first).
    equity = np.empty((rows, returns.shape[1] + 1))
    kernel.compound(returns, equity)
    sel = protocol.selection
    closes = np.concatenate([bars.close[sel.start : sel.start + 1]] + [bars.close[f][1:] for f in protocol.folds])
    stitched = (equity, returns, positions, *_trades_by_row(runs), closes, None)
    # Every fold's metrics and the stitched ones in one call: the numpy work is paid once.
    summaries = []
    *fold_metrics, metrics = compute_metrics_windows([run.metrics_window() for run in runs] + [stitched],
                                                     bars_per_year, summaries=summaries)
    # The stitched window's moment sums are the Sharpe statistics' (the same pass, not a second one).
    stats = sharpe_stats_of_moments(summaries[-1][:, 1:6], returns.shape[1])
    fold_scores = [[score_of(m[r], agent.objective) for m in fold_metrics] for r in range(rows)]
    scores = selection_scores(fold_scores)
    recent = runs[-1].trade_records_rows(last=10)
    per_set = (time.perf_counter() - started) / rows
    out = []
    for r, params in enumerate(params_list):
        lab_metrics.backtest_observed(per_set)
        out.append(SelectionEvaluation(
            params=params, fold_metrics=[m[r] for m in fold_metrics], fold_scores=fold_scores[r], score=scores[r],
            metrics=metrics[r], stats=stats[r], returns=returns[r], recent_trades=recent[r], target=targets[r],
        ))
    return out


def _trades_by_row(runs):
    """Every fold's trades as flat (returns, pnls, row) arrays, ordered by row, then fold."""
    returns, pnls, owners = [], [], []
    for run in runs:
        table_returns, table_pnls, table_owners = run.flat_trades()
        returns.append(table_returns)
        pnls.append(table_pnls)
        owners.append(table_owners)
    owners = np.concatenate(owners)
    order = np.argsort(owners, kind="stable")
    return np.concatenate(returns)[order], np.concatenate(pnls)[order], owners[order]


def evaluate_sealed(agent, template, params, bars, protocol, bars_per_year, *, target=None):
    """Backtest ``params`` on the sealed test window (warm-up from earlier bars only)."""
    if target is None:
        target = template.target_positions(bars, params)
    window = protocol.test
    result = run_backtest(bars.slice(window.start, window.stop), target[window],
                          **costs_of(agent, params, bars_per_year))
    return SealedEvaluation(metrics=result.metrics, score=score_of(result.metrics, agent.objective),
                            trades=result.trades, returns=result.returns[1:])
