"""TPE's compiled log normal CDF: installed into Optuna, bit for bit Optuna's own, same proposals."""

import numpy as np
import pytest
from optuna.samplers._tpe import _truncnorm

from agents.refiners import optuna_refiner, tpe_kernels
from agents.refiners.base import RefinerContext, TriedParams
from agents.refiners.optuna_refiner import OptunaRefiner
from agents.strategies.registry import get_template


def inputs():
    rng = np.random.default_rng(5)
    return np.concatenate([
        np.linspace(-60.0, 60.0, 24_001),  # every branch and both edges (6 and -20)
        rng.normal(0.0, 8.0, 50_000),
        rng.uniform(-1e5, -20.0, 20_000),  # the asymptotic series
        [6.0, -20.0, np.nextafter(-20.0, 0.0), np.nextafter(6.0, 7.0), 0.0, -0.0, np.inf, -np.inf, np.nan,
         -1.3e154],
    ])


def test_the_compiled_function_is_installed_where_optuna_calls_it():
    # Fails if an Optuna upgrade renames the private function: the speed-up is then gone, say so.
    assert optuna_refiner.OPTUNA_LOG_NDTR is not None
    assert getattr(_truncnorm._log_ndtr, "compiled_for_tpe", False)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # Optuna's own NaN warning
def test_it_equals_optunas_function_bit_for_bit():
    x = inputs()
    mine, theirs = _truncnorm._log_ndtr(x), optuna_refiner.OPTUNA_LOG_NDTR(x)
    assert mine.dtype == theirs.dtype == np.float64
    assert np.array_equal(mine.view(np.int64), theirs.view(np.int64))  # NaN payloads and -0.0 too


def test_it_keeps_the_shape_and_optunas_overflow():
    x = np.linspace(-30.0, 10.0, 12).reshape(3, 4)
    assert _truncnorm._log_ndtr(x).shape == (3, 4)
    assert _truncnorm._log_ndtr(np.array([], dtype=float)).shape == (0,)
    with pytest.raises(OverflowError):  # Python's a**2 overflows there, and so did Optuna
        _truncnorm._log_ndtr(np.array([-1e300]))


def test_warm_up_runs():
    tpe_kernels.warm_up()


def proposals(history, seed):
    template = get_template("sma_crossover")
    ctx = RefinerContext(template=template, current_params=template.defaults(), fold_metrics=[],
                         selection_score=0.0, objective="sharpe", history=history, recent_trades=[],
                         n_candidates=8, seed=seed)
    return [c.params for c in OptunaRefiner().propose(ctx).candidates]


@pytest.mark.parametrize("n", [0, 12, 90])
def test_the_refiner_proposes_exactly_what_optunas_function_gave(monkeypatch, n):
    template = get_template("sma_crossover")
    rng = np.random.default_rng(n)
    history = []
    while len(history) < n:
        fast = int(rng.integers(1, 120))
        params = template.validate({"fast": fast, "slow": fast + int(rng.integers(1, 200)),
                                    "stop_loss": float(rng.uniform(0, 0.3))})
        history.append(TriedParams(params, float(rng.normal())))
    compiled = proposals(history, seed=3)
    monkeypatch.setattr(_truncnorm, "_log_ndtr", optuna_refiner.OPTUNA_LOG_NDTR)
    assert compiled == proposals(history, seed=3)
