"""Backtesting one parameter set of an agent on its walk-forward windows.

Windows: the instrument's bars are split by the agent's `train_fraction`; train is the older
part, validation the newer part, so the windows follow newly imported bars. Target positions
are computed once over the whole history (each bar only sees its past, so warm-up of the
indicators in the validation window uses train bars without look-ahead), then each window is
backtested on its own, starting flat.
"""

import time
from dataclasses import dataclass

import numpy as np

from agents.backtest.engine import run_backtest
from agents.strategies.registry import get_template
from config.observability import metrics as lab_metrics

MIN_WINDOW_BARS = 20


class EvaluationError(Exception):
    """The data cannot support an evaluation (e.g. too few bars)."""


@dataclass(frozen=True)
class Windows:
    train: slice
    validation: slice

    def describe(self, bars):
        def span(s):
            ts = bars.timestamps[s]
            return {"start": str(ts[0])[:19], "end": str(ts[-1])[:19], "bars": len(ts)}

        return {"train": span(self.train), "validation": span(self.validation)}


@dataclass(frozen=True)
class Evaluation:
    params: dict
    train_metrics: dict
    validation_metrics: dict
    score: float
    validation_trades: list


def split_windows(n_bars, train_fraction):
    split = int(n_bars * train_fraction)
    if split < MIN_WINDOW_BARS or n_bars - split < MIN_WINDOW_BARS:
        raise EvaluationError(
            f"not enough bars: {n_bars} bars with train_fraction {train_fraction} leave "
            f"{split} train and {n_bars - split} validation bars (at least {MIN_WINDOW_BARS} each needed)"
        )
    return Windows(train=slice(0, split), validation=slice(split, n_bars))


def score_of(metrics, objective):
    value = metrics.get(objective)
    if value is None or not np.isfinite(value):
        return 0.0
    return float(value)


def evaluate_params(agent, template_key, params, bars, windows, bars_per_year):
    """Backtest `params` on both windows; params must already be validated."""
    started = time.perf_counter()
    template = get_template(template_key)
    target = template.target_positions(bars, params)
    costs = {
        "fee_bps": agent.fee_bps,
        "slippage_bps": agent.slippage_bps,
        "bars_per_year": bars_per_year,
        "stop_loss": params.get("stop_loss", 0.0),
        "take_profit": params.get("take_profit", 0.0),
        "initial_capital": agent.initial_capital,
    }
    results = {}
    for name, window in (("train", windows.train), ("validation", windows.validation)):
        w_bars = bars.slice(window.start, window.stop)
        results[name] = run_backtest(w_bars, target[window], **costs)
    validation = results["validation"]
    lab_metrics.backtest_observed(time.perf_counter() - started)
    return Evaluation(
        params=params,
        train_metrics=results["train"].metrics,
        validation_metrics=validation.metrics,
        score=score_of(validation.metrics, agent.objective),
        validation_trades=validation.trades,
    )
