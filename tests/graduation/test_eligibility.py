"""Eligibility: each rule alone on the protocol's evidence (folds, sealed test, DSR, PBO, track
record), which iteration is the evidence, and the paper record for live."""

import datetime as dt
import math

import pytest
from django.utils import timezone

from agents.evaluation.statistics import min_track_record_length, probabilistic_sharpe
from agents.models import AgentStatus, IterationStatus, LearningIteration, StrategyVersion, VersionOrigin
from graduation import services
from graduation.eligibility import describe_failures, eligibility
from graduation.models import PaperAccount
from graduation.trading.metrics import account_metrics, account_sharpe_stats
from graduation.trading.runner import paper_tick
from tests.factories import make_agent
from tests.graduation.helpers import GOOD, QUICK, add_iteration, append_bars, eligible_agent, paper_agent

pytestmark = pytest.mark.django_db


def rows(result):
    return {r["criterion"]: r for r in result["criteria"]}


def set_folds(iteration, folds):
    LearningIteration.objects.filter(pk=iteration.pk).update(fold_metrics=folds)


def test_an_agent_meeting_every_criterion_is_eligible_for_paper_trading():
    agent = eligible_agent()
    result = eligibility(agent)
    assert result["verdict"] == "eligible" and result["eligible"], describe_failures(result)
    assert result["target_status"] == AgentStatus.PAPER_TRADING
    assert result["failed"] == []
    # The evidence is one iteration, the latest that evaluated the current version.
    window = result["window"]
    assert window["iterations"] == [3] and window["iteration"] == 3
    assert window["version"] == agent.current_version_id and window["n_trials"] == 12
    assert window["windows"]["test"]["bars"] == 200
    assert window["from"] and window["to"]
    assert rows(result)["min_win_rate"] == {
        "criterion": "min_win_rate", "required": 0.4, "actual": 0.6, "passed": True, "evidence": "folds+test",
        "comparison": ">=", "folds_passed": 5, "folds": 5, "folds_needed": 3, "fold_values": [0.6] * 5,
        "test_value": 0.6,
    }
    assert rows(result)["min_signals"] == {
        "criterion": "min_signals", "required": 5, "actual": 60, "passed": True, "evidence": "selection+test",
        "comparison": ">=", "test_value": 12,
    }
    assert rows(result)["min_dsr"]["actual"] == 0.99 and rows(result)["max_pbo"]["actual"] == 0.1
    assert rows(result)["min_iterations"]["actual"] == 3
    track = rows(result)["min_track_record"]
    expected = math.ceil(min_track_record_length(0.1, 0.0, 3.0, alpha=0.2))
    assert track["min_track_record_bars"] == expected and track["actual"] == 200 and track["passed"]
    assert track["evidence"] == "test" and track["confidence"] == 0.8
    assert "min_probabilistic_sharpe" not in rows(result)  # off by default
    assert {"min_paper_psr", "paper_track_record_confidence"}.isdisjoint(rows(result))  # paper -> live only


@pytest.mark.parametrize(
    "criterion, criteria, metrics",
    [
        ("min_win_rate", {}, {"win_rate": 0.3}),
        ("min_sharpe_ratio", {}, {"sharpe": 0.2}),
        ("min_total_return", {}, {"total_return": -0.02}),
        ("min_signals", {}, {"num_trades": 0}),
        ("max_drawdown", {}, {"max_drawdown": 0.4}),
        ("min_probabilistic_sharpe", {"min_probabilistic_sharpe": 0.95}, {}),
    ],
)
def test_each_metric_criterion_failing_alone(criterion, criteria, metrics):
    agent = eligible_agent(criteria, iterations=2)
    add_iteration(agent, metrics)
    result = eligibility(agent)
    assert result["verdict"] == "not_eligible"
    assert result["failed"] == [criterion]
    assert not rows(result)[criterion]["passed"]
    assert criterion in describe_failures(result)


@pytest.mark.parametrize("criterion, evidence, stats", [
    ("min_dsr", {"dsr": 0.9}, {}),
    ("max_pbo", {"pbo": 0.7}, {}),
    ("min_track_record", {}, {"test_bars": 50}),  # MinTRL of a 0.1 per-bar Sharpe at 80% is 72 bars
    ("min_track_record", {}, {"test_sharpe": -0.05}),  # no length is enough for a negative Sharpe
])
def test_each_statistic_failing_alone(criterion, evidence, stats):
    agent = eligible_agent(iterations=2)
    add_iteration(agent, evidence=evidence, stats=stats)
    result = eligibility(agent)
    assert result["failed"] == [criterion], describe_failures(result)
    assert criterion in describe_failures(result)


def test_the_statistics_rules_read_their_thresholds():
    agent = eligible_agent({"min_dsr": 0.5, "max_pbo": 0.8, "track_record_confidence": None})
    add_iteration(agent, evidence={"dsr": 0.6, "pbo": 0.75}, stats={"test_bars": 10})
    result = eligibility(agent)
    assert result["eligible"], describe_failures(result)
    assert "min_track_record" not in rows(result)  # off
    agent.graduation_criteria = {**agent.graduation_criteria, "min_dsr": 0.7, "max_pbo": 0.7}
    assert eligibility(agent)["failed"] == ["min_dsr", "max_pbo"]


def test_a_missing_statistic_fails_its_rule():
    agent = eligible_agent(iterations=2)
    add_iteration(agent, evidence={"dsr": None, "pbo": None})
    result = eligibility(agent)
    assert result["failed"] == ["min_dsr", "max_pbo"]
    assert rows(result)["min_dsr"]["actual"] is None


def test_fold_rules_pass_in_min_fold_pass_folds_and_on_the_sealed_test():
    agent = eligible_agent(iterations=2)
    bad = {**GOOD, "sharpe": -0.3}
    iteration = add_iteration(agent)
    set_folds(iteration, [bad, bad, GOOD, GOOD, GOOD])  # 3 of 5 pass: enough for the default 3
    result = eligibility(agent)
    assert result["eligible"], describe_failures(result)
    row = rows(result)["min_sharpe_ratio"]
    assert (row["folds_passed"], row["folds"], row["folds_needed"]) == (3, 5, 3)
    assert row["actual"] == 1.2  # the 3rd best fold

    set_folds(iteration, [bad, bad, bad, GOOD, GOOD])  # 2 of 5: one regime is not consistency
    result = eligibility(agent)
    assert result["failed"] == ["min_sharpe_ratio"]
    assert rows(result)["min_sharpe_ratio"]["actual"] == -0.3
    assert "min_sharpe_ratio: -0.3 vs required 0.5 (in 2 of 5 folds, needs 3; sealed test 1.2)" in (
        describe_failures(result))
    agent.graduation_criteria = {**agent.graduation_criteria, "min_fold_pass": 2}
    assert eligibility(agent)["eligible"]
    agent.graduation_criteria = {**agent.graduation_criteria, "min_fold_pass": 20}  # capped at K
    assert rows(eligibility(agent))["min_sharpe_ratio"]["folds_needed"] == 5


def test_passing_every_fold_is_not_enough_when_the_sealed_test_fails():
    agent = eligible_agent(iterations=2)
    iteration = add_iteration(agent, {"sharpe": 0.1})
    set_folds(iteration, [GOOD] * 5)
    result = eligibility(agent)
    assert result["failed"] == ["min_sharpe_ratio"]
    row = rows(result)["min_sharpe_ratio"]
    assert row["folds_passed"] == 5 and row["test_value"] == 0.1 and not row["passed"]


def test_min_signals_counts_the_selection_data_as_a_whole_and_the_sealed_test():
    agent = eligible_agent(iterations=2)
    iteration = add_iteration(agent)
    few = {**GOOD, "num_trades": 2.0}
    set_folds(iteration, [few] * 5)  # 2 per fold, 10 on the selection data
    LearningIteration.objects.filter(pk=iteration.pk).update(train_metrics={**GOOD, "num_trades": 10.0})
    assert eligibility(agent)["eligible"]
    LearningIteration.objects.filter(pk=iteration.pk).update(train_metrics={**GOOD, "num_trades": 4.0},
                                                             validation_metrics={**GOOD, "num_trades": 12.0})
    result = eligibility(agent)
    assert result["failed"] == ["min_signals"] and rows(result)["min_signals"]["actual"] == 4


def test_min_signals_failing_on_the_sealed_test_says_so():
    agent = eligible_agent(iterations=2)
    add_iteration(agent, {"num_trades": 1})  # 5 on the selection data, 1 on the sealed test
    result = eligibility(agent)
    assert result["failed"] == ["min_signals"]
    assert "min_signals: 5 vs required 5 (on the selection data; sealed test 1)" in describe_failures(result)


def test_min_iterations_failing_alone():
    agent = eligible_agent({"min_iterations": 5}, iterations=4)
    result = eligibility(agent)
    assert result["failed"] == ["min_iterations"]
    assert rows(result)["min_iterations"]["actual"] == 4


def test_a_missing_metric_fails_its_criterion():
    agent = eligible_agent(iterations=2)
    add_iteration(agent, {}, sharpe=None)
    result = eligibility(agent)
    assert result["failed"] == ["min_sharpe_ratio"]
    assert rows(result)["min_sharpe_ratio"]["actual"] is None


def test_only_the_latest_evaluation_of_the_current_version_is_the_evidence():
    agent = eligible_agent(iterations=0)
    add_iteration(agent, {"win_rate": 0.1})  # #1 fails: superseded by newer evidence
    for _ in range(3):
        add_iteration(agent)  # #2..#4
    result = eligibility(agent)
    assert result["eligible"] and result["window"]["iterations"] == [4]

    add_iteration(agent, {"win_rate": 0.1})  # #5: the latest fails
    result = eligibility(agent)
    assert not result["eligible"] and result["window"]["iterations"] == [5]
    assert rows(result)["min_win_rate"]["actual"] == 0.1
    add_iteration(agent)  # #6: re-evaluated, passes (the folds are the consistency check now)
    assert eligibility(agent)["eligible"]


def test_failed_and_pre_protocol_iterations_are_not_evidence():
    agent = eligible_agent(iterations=3)
    add_iteration(agent, status=IterationStatus.FAILED)
    result = eligibility(agent)
    assert result["eligible"] and result["window"]["iterations"] == [3]
    old = add_iteration(agent, {"win_rate": 0.1})
    LearningIteration.objects.filter(pk=old.pk).update(selection_score=None)  # a row from before the protocol
    result = eligibility(agent)
    assert result["eligible"] and result["window"]["iterations"] == [3]
    assert rows(result)["min_iterations"]["actual"] == 4  # it still counts as learning effort


def test_a_version_nobody_has_evaluated_yet_is_not_eligible():
    agent = eligible_agent()
    version = StrategyVersion.objects.create(agent=agent, number=2, params=agent.current_version.params,
                                             origin=VersionOrigin.MANUAL, parent=agent.current_version)
    agent.current_version = version
    agent.save(update_fields=["current_version"])
    result = eligibility(agent)
    assert result["failed"] == ["evidence"]
    assert "next iteration" in rows(result)["evidence"]["note"]
    add_iteration(agent)  # evaluates v2
    result = eligibility(agent)
    assert result["eligible"] and result["window"]["version"] == version.pk


def test_after_a_demotion_only_newer_iterations_are_evidence():
    agent = paper_agent()
    services.agent_demote(agent, actor=agent.owner, reason="not convinced")
    agent.refresh_from_db()
    result = eligibility(agent)
    assert result["failed"] == ["evidence"]
    assert result["window"]["since_demotion"] is not None
    assert "since the last demotion" in rows(result)["evidence"]["note"]
    assert rows(result)["min_iterations"]["passed"]  # the lifetime count still counts
    add_iteration(agent, finished_at=timezone.now() + dt.timedelta(seconds=1))
    assert eligibility(agent)["eligible"]


def test_live_eligibility_reads_the_paper_record(settings):
    settings.LAB_PAPER_MIN_BARS = 30
    settings.LAB_PAPER_MIN_TRADES = 2
    agent = paper_agent({"max_drawdown": 1.0, "min_total_return": -1.0, "min_paper_psr": 0.0,
                         "paper_track_record_confidence": None}, params={"fast": 3, "slow": 8})
    result = eligibility(agent)
    assert result["target_status"] == AgentStatus.LIVE_TRADING
    assert set(result["failed"]) == {"paper_bars", "paper_trades"}
    assert result["window"]["kind"] == "paper" and result["window"]["bars"] == 0

    append_bars(agent.instrument, 60, seed=4)
    paper_tick()
    result = eligibility(agent)
    assert result["eligible"], describe_failures(result)
    assert rows(result)["paper_bars"]["actual"] == 60
    assert rows(result)["paper_trades"]["actual"] >= 2
    # The learning criteria (folds, DSR, PBO, sealed test) are not the paper gate's.
    assert set(rows(result)) == {"paper_bars", "paper_trades", "max_drawdown", "min_total_return", "min_paper_psr"}
    account = PaperAccount.objects.get(agent=agent, closed_at__isnull=True)
    metrics = account_metrics(account)
    assert result["window"]["metrics"]["max_drawdown"] == rows(result)["max_drawdown"]["actual"]
    stats = account_sharpe_stats(account)
    psr = probabilistic_sharpe(stats.sr, stats.t, stats.skew, stats.kurt)
    assert rows(result)["min_paper_psr"]["actual"] == pytest.approx(metrics["psr"])
    assert rows(result)["min_paper_psr"]["actual"] == pytest.approx(psr, abs=1e-9)
    assert rows(result)["min_paper_psr"]["evidence"] == "paper"

    agent.graduation_criteria = {**agent.graduation_criteria, "min_paper_psr": 1.0}
    assert eligibility(agent)["failed"] == ["min_paper_psr"]
    # Raw Sharpe over a fixed number of bars is no longer the paper gate.
    agent.graduation_criteria = {**agent.graduation_criteria, "min_paper_psr": 0.0, "min_sharpe_ratio": 10.0}
    assert eligibility(agent)["eligible"]


@pytest.mark.parametrize("seed, drift, passed, need", [
    (4, 0.01, True, 18),  # a steady rise: per-bar Sharpe 0.39, MinTRL 18 bars, 60 traded
    (9, 0.003, False, 230),  # a positive but weak Sharpe (0.11): 60 bars are too short
    (4, 0.0, False, None),  # a negative Sharpe: no length is enough
])
def test_live_needs_a_paper_record_as_long_as_its_minimum_track_record(settings, seed, drift, passed, need):
    settings.LAB_PAPER_MIN_BARS = 5
    settings.LAB_PAPER_MIN_TRADES = 1
    agent = paper_agent({"max_drawdown": 1.0, "min_total_return": -1.0, "min_paper_psr": 0.0},
                        params={"fast": 3, "slow": 8})
    append_bars(agent.instrument, 60, seed=seed, drift=drift)
    paper_tick()
    account = PaperAccount.objects.get(agent=agent, closed_at__isnull=True)
    stats = account_sharpe_stats(account)
    result = eligibility(agent)
    row = rows(result)["min_track_record"]
    assert row["evidence"] == "paper" and row["confidence"] == 0.95 and row["actual"] == stats.t == 60
    assert row["min_track_record_bars"] == need
    if need:
        assert need == math.ceil(min_track_record_length(stats.sr, stats.skew, stats.kurt, alpha=0.05))
    else:
        assert row["required"] == "a positive Sharpe ratio"
    assert row["passed"] is passed
    assert result["failed"] == ([] if passed else ["min_track_record"]), describe_failures(result)
    agent.graduation_criteria = {**agent.graduation_criteria, "paper_track_record_confidence": None}
    assert "min_track_record" not in rows(eligibility(agent))  # off


def test_live_trading_is_the_last_step():
    agent = make_agent()
    agent.status = AgentStatus.LIVE_TRADING
    result = eligibility(agent)
    assert result["verdict"] == "final" and result["target_status"] is None and result["criteria"] == []


def test_default_criteria_apply_without_overrides(settings):
    settings.LAB_GRADUATION_CRITERIA = {}
    agent = make_agent()
    for _ in range(9):
        add_iteration(agent, GOOD)
    result = eligibility(agent)
    assert result["failed"] == ["min_iterations"], describe_failures(result)  # the lab default is 10
    assert result["criteria_in_force"]["min_iterations"] == 10
    assert result["criteria_in_force"]["min_dsr"] == 0.95 and result["criteria_in_force"]["max_pbo"] == 0.5
    assert QUICK["min_iterations"] < 10
    add_iteration(agent, GOOD)
    assert eligibility(agent)["eligible"]
