"""Criteria validation: types, ranges, unknown names, every violation named, nothing changed."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from agents.models import ActivityLog
from agents.services.errors import ValidationFailed
from graduation import criteria
from tests.factories import make_agent

pytestmark = pytest.mark.django_db


def test_lab_defaults_are_valid_and_cover_every_criterion(settings):
    criteria.check_defaults()
    assert set(criteria.defaults()) == set(criteria.CRITERIA)
    assert criteria.defaults()["min_probabilistic_sharpe"] is None


def test_bad_lab_defaults_stop_the_start_naming_each(settings):
    settings.LAB_GRADUATION_CRITERIA = {**settings.LAB_GRADUATION_CRITERIA, "consistency_window": 0, "min_win_rate": 2}
    with pytest.raises(ImproperlyConfigured) as exc:
        criteria.check_defaults()
    assert "consistency_window" in str(exc.value) and "min_win_rate" in str(exc.value)


def test_every_violation_is_named_and_nothing_changes():
    agent = make_agent()
    bad = {
        "min_iterations": 0, "min_win_rate": 1.5, "min_sharpe_ratio": True, "min_total_return": -2,
        "min_signals": 2.5, "consistency_window": 51, "max_drawdown": 0, "min_probabilistic_sharpe": "high",
        "bogus": 1,
    }
    with pytest.raises(ValidationFailed) as exc:
        criteria.criteria_set(agent, bad, actor=agent.owner)
    assert set(exc.value.errors) == set(bad)
    assert "unknown criterion" in exc.value.errors["bogus"]
    assert "between 1 and 50" in exc.value.errors["consistency_window"]
    agent.refresh_from_db()
    assert agent.graduation_criteria == {}
    assert not ActivityLog.objects.filter(agent=agent, event="graduation_criteria_set").exists()


@pytest.mark.parametrize("name, value", [
    ("max_drawdown", float("nan")), ("min_sharpe_ratio", float("inf")), ("min_iterations", None),
    ("min_win_rate", "0.5"), ("consistency_window", 2.5),
])
def test_not_numbers_and_out_of_range_values_are_refused(name, value):
    with pytest.raises(ValidationFailed) as exc:
        criteria.validate_overrides({name: value})
    assert list(exc.value.errors) == [name]


def test_valid_overrides_are_stored_and_overlay_the_defaults():
    agent = make_agent()
    agent = criteria.criteria_set(agent, {"min_iterations": 4.0, "max_drawdown": 1, "min_probabilistic_sharpe": 0.9},
                                  actor=agent.owner)
    assert agent.graduation_criteria == {"min_iterations": 4, "max_drawdown": 1.0, "min_probabilistic_sharpe": 0.9}
    assert isinstance(agent.graduation_criteria["min_iterations"], int)
    effective = criteria.effective_criteria(agent)
    assert effective["min_iterations"] == 4 and effective["min_win_rate"] == criteria.defaults()["min_win_rate"]
    assert ActivityLog.objects.filter(agent=agent, event="graduation_criteria_set").exists()
    agent = criteria.criteria_set(agent, {}, actor=agent.owner)
    assert criteria.effective_criteria(agent) == criteria.defaults()


def test_a_bad_stored_value_falls_back_to_the_default():
    agent = make_agent()
    agent.graduation_criteria = {"min_win_rate": "lots", "consistency_window": 7, "unknown": 1}
    effective = criteria.effective_criteria(agent)
    assert effective["min_win_rate"] == criteria.defaults()["min_win_rate"]
    assert effective["consistency_window"] == 7
