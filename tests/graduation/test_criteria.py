"""Criteria validation: types, ranges, unknown names, every violation named, nothing changed."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from agents.models import ActivityLog
from core.errors import ValidationFailed
from graduation import criteria
from tests.factories import make_agent

pytestmark = pytest.mark.django_db


def test_lab_defaults_are_valid_and_cover_every_criterion(settings):
    settings.LAB_GRADUATION_CRITERIA = {}
    criteria.check_defaults()
    assert set(criteria.defaults()) == set(criteria.CRITERIA)
    assert "consistency_window" not in criteria.CRITERIA  # replaced by fold consistency
    assert criteria.defaults()["min_probabilistic_sharpe"] is None
    assert criteria.defaults() == {rule.name: rule.default for rule in criteria.GRADUATION_RULES}
    assert {k: criteria.defaults()[k] for k in ("min_iterations", "min_fold_pass", "min_dsr", "max_pbo",
                                                 "max_drawdown", "track_record_confidence", "min_paper_psr",
                                                 "paper_track_record_confidence")} == {
        "min_iterations": 10, "min_fold_pass": 3, "min_dsr": 0.95, "max_pbo": 0.5, "max_drawdown": 0.25,
        "track_record_confidence": 0.8, "min_paper_psr": 0.95, "paper_track_record_confidence": 0.95}


def test_lab_wide_overrides_replace_only_their_defaults(settings):
    settings.LAB_GRADUATION_CRITERIA = {"min_dsr": 0.9, "max_pbo": 0.3}
    criteria.check_defaults()
    values = criteria.defaults()
    assert (values["min_dsr"], values["max_pbo"]) == (0.9, 0.3)
    assert values["min_fold_pass"] == criteria.RULES["min_fold_pass"].default
    agent = make_agent()
    agent.graduation_criteria = {"min_dsr": 0.5}
    assert criteria.effective_criteria(agent)["min_dsr"] == 0.5  # the agent's own override wins
    assert criteria.effective_criteria(agent)["max_pbo"] == 0.3


def test_bad_lab_defaults_stop_the_start_naming_each(settings):
    settings.LAB_GRADUATION_CRITERIA = {"consistency_window": 3, "min_win_rate": 2, "max_pbo": 1.5}
    with pytest.raises(ImproperlyConfigured) as exc:
        criteria.check_defaults()
    message = str(exc.value)
    assert "consistency_window: unknown criterion" in message  # the old criterion is gone
    assert "min_win_rate=2" in message and "max_pbo=1.5" in message


def test_every_violation_is_named_and_nothing_changes():
    agent = make_agent()
    bad = {
        "min_iterations": 0, "min_win_rate": 1.5, "min_sharpe_ratio": True, "min_total_return": -2,
        "min_signals": 2.5, "min_fold_pass": 21, "max_drawdown": 0, "min_probabilistic_sharpe": "high",
        "min_dsr": 1.1, "max_pbo": -0.1, "track_record_confidence": 0.3, "min_paper_psr": None,
        "paper_track_record_confidence": 1.0, "consistency_window": 3, "bogus": 1,
    }
    with pytest.raises(ValidationFailed) as exc:
        criteria.criteria_set(agent, bad, actor=agent.owner)
    assert set(exc.value.errors) == set(bad)
    assert "unknown name" in exc.value.errors["bogus"] and "min_fold_pass" in exc.value.errors["bogus"]
    assert "unknown name" in exc.value.errors["consistency_window"]
    assert "between 1 and 20" in exc.value.errors["min_fold_pass"]
    assert "between 0.5 and 0.999" in exc.value.errors["track_record_confidence"]
    agent.refresh_from_db()
    assert agent.graduation_criteria == {}
    assert not ActivityLog.objects.filter(agent=agent, event="graduation_criteria_set").exists()


@pytest.mark.parametrize("name, value", [
    ("max_drawdown", float("nan")), ("min_sharpe_ratio", float("inf")), ("min_iterations", None),
    ("min_win_rate", "0.5"), ("min_fold_pass", 2.5), ("min_dsr", None), ("max_pbo", float("nan")),
    ("min_paper_psr", True),
])
def test_not_numbers_and_out_of_range_values_are_refused(name, value):
    with pytest.raises(ValidationFailed) as exc:
        criteria.validate_overrides({name: value})
    assert list(exc.value.errors) == [name]


@pytest.mark.parametrize("name", ["min_probabilistic_sharpe", "track_record_confidence",
                                  "paper_track_record_confidence"])
def test_nullable_criteria_accept_null_to_turn_them_off(name):
    assert criteria.validate_overrides({name: None}) == {name: None}


def test_valid_overrides_are_stored_and_overlay_the_defaults():
    agent = make_agent()
    agent = criteria.criteria_set(agent, {"min_iterations": 4.0, "max_drawdown": 1, "min_probabilistic_sharpe": 0.9,
                                          "min_fold_pass": 5, "track_record_confidence": None},
                                  actor=agent.owner)
    assert agent.graduation_criteria == {"min_iterations": 4, "max_drawdown": 1.0, "min_probabilistic_sharpe": 0.9,
                                         "min_fold_pass": 5, "track_record_confidence": None}
    assert isinstance(agent.graduation_criteria["min_iterations"], int)
    effective = criteria.effective_criteria(agent)
    assert effective["min_iterations"] == 4 and effective["min_win_rate"] == criteria.defaults()["min_win_rate"]
    assert effective["track_record_confidence"] is None
    assert ActivityLog.objects.filter(agent=agent, event="graduation_criteria_set").exists()
    agent = criteria.criteria_set(agent, {}, actor=agent.owner)
    assert criteria.effective_criteria(agent) == criteria.defaults()


def test_a_bad_stored_value_falls_back_to_the_default():
    agent = make_agent()
    agent.graduation_criteria = {"min_win_rate": "lots", "min_fold_pass": 0, "max_pbo": 0.2,
                                 "consistency_window": 7, "unknown": 1}
    effective = criteria.effective_criteria(agent)
    assert effective["min_win_rate"] == criteria.defaults()["min_win_rate"]
    assert effective["min_fold_pass"] == criteria.defaults()["min_fold_pass"]
    assert effective["max_pbo"] == 0.2
    assert "consistency_window" not in effective and "unknown" not in effective


def test_every_rule_declares_its_evidence_and_bounds():
    bounds = {rule.name: rule.bounds() for rule in criteria.GRADUATION_RULES}
    assert {name for name, b in bounds.items() if b["evidence"] == "folds+test"} == {
        "min_win_rate", "min_sharpe_ratio", "min_total_return", "max_drawdown"}
    assert bounds["min_signals"]["evidence"] == "selection+test"
    assert bounds["min_probabilistic_sharpe"]["evidence"] == "test"
    assert bounds["min_paper_psr"]["evidence"] == "paper"
    assert (bounds["max_pbo"]["comparison"], bounds["max_drawdown"]["comparison"]) == ("<=", "<=")
    assert bounds["max_drawdown"]["min_exclusive"] and bounds["min_fold_pass"]["max"] == 20
    learning = {r.name for r in criteria.LEARNING_RULES}
    assert learning == set(criteria.CRITERIA) - {"min_paper_psr", "paper_track_record_confidence"}
