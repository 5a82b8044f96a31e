"""agents.evaluation.numbers: the one "finite number or None" rule every reader of stored numbers uses."""

import dataclasses
import decimal
import fractions
import math

import numpy as np
import pytest

from agents.evaluation import rules
from agents.evaluation.backtests import score_of
from agents.evaluation.numbers import bounded_number, finite_or_none
from alerts import monitor


@pytest.mark.parametrize(("value", "expected"), [
    (0, 0.0), (3, 3.0), (-2.5, -2.5), (np.float64(0.25), 0.25), (np.float32(0.5), 0.5), (np.int64(7), 7.0),
    (fractions.Fraction(1, 4), 0.25), (10**300, 1e300),
])
def test_real_numbers_become_floats(value, expected):
    result = finite_or_none(value)
    assert type(result) is float and result == expected


@pytest.mark.parametrize("value", [
    None, True, False, np.bool_(True), "0.5", "nan", b"1", decimal.Decimal("1.5"), [1.0], {"x": 1},
    math.nan, math.inf, -math.inf, np.float64("nan"), 10**400,
])
def test_bools_strings_non_finite_and_overflowing_values_are_none(value):
    assert finite_or_none(value) is None


def test_a_gate_fails_a_metric_stored_as_a_string_or_a_bool():
    # The rules engine reads metrics through the same helper: "0.9" or True is bad data, not a pass.
    rule = dataclasses.replace(rules.MIN_WIN_RATE, evidence="test")
    assert rules.judge_rule(rule, 0.4, rules.Evidence(test={"win_rate": 0.9}))["passed"] is True
    for bad in ("0.9", True):
        row = rules.judge_rule(rule, 0.4, rules.Evidence(test={"win_rate": bad}))
        assert row is not None and row["actual"] is None and row["passed"] is False


def test_the_monitor_ignores_a_count_stored_as_a_bool():
    # True trades is not one trade: with it the win-rate rule has nothing to compare.
    assert monitor.win_rate_drop(0.6, 40, 0.2, True, 0.1) is None
    assert monitor.win_rate_drop(0.6, 40, 0.2, 40, 0.1) is not None


@pytest.mark.parametrize(("value", "kind", "expected"), [
    (2, "int", 2), (2.0, "int", 2), (2.5, "int", None), ("2", "int", None), (True, "int", None),
    (2**62 + 1, "int", 2**62 + 1),  # exact: never through a float
    (0.5, "float", 0.5), (1, "float", 1.0), (11, "int", None), (-0.1, "float", None), (math.nan, "float", None),
])
def test_bounded_number_within_0_and_10(value, kind, expected):
    result = bounded_number(value, kind, 0, 10 if value != 2**62 + 1 else 2**63)
    assert result == expected and type(result) is type(expected)


def test_an_open_low_bound_excludes_itself():
    assert bounded_number(0.0, "float", 0.0, 1.0, low_open=True) is None
    assert bounded_number(0.01, "float", 0.0, 1.0, low_open=True) == 0.01


def test_the_objective_read_from_metrics_follows_the_same_rule():
    assert score_of({"sharpe": 1.5}, "sharpe") == 1.5
    for bad in (None, True, "1.5", "n/a", math.nan, math.inf):
        assert score_of({"sharpe": bad}, "sharpe") == 0.0  # "n/a" used to raise ValueError
    assert score_of(None, "sharpe") == 0.0
