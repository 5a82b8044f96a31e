"""Vectorised backtest engine and the metrics shared with paper trading (pure numpy)."""

from agents.backtest.engine import EXIT_REASONS, BacktestResult, TradeRecord, TradeTable, run_backtest
from agents.backtest.metrics import METRIC_KEYS, compute_metrics

__all__ = [
    "EXIT_REASONS",
    "METRIC_KEYS",
    "BacktestResult",
    "TradeRecord",
    "TradeTable",
    "compute_metrics",
    "run_backtest",
]
