"""Eligibility: each criterion alone, the consistency window, the paper record for live."""

import datetime as dt

import pytest
from django.utils import timezone

from agents.models import AgentStatus, IterationStatus
from graduation import services
from graduation.eligibility import describe_failures, eligibility
from graduation.paper.runner import paper_tick
from tests.factories import make_agent
from tests.graduation.helpers import GOOD, QUICK, add_iteration, append_bars, eligible_agent, paper_agent

pytestmark = pytest.mark.django_db


def rows(result):
    return {r["criterion"]: r for r in result["criteria"]}


def test_an_agent_meeting_every_criterion_is_eligible_for_paper_trading():
    agent = eligible_agent()
    result = eligibility(agent)
    assert result["verdict"] == "eligible" and result["eligible"]
    assert result["target_status"] == AgentStatus.PAPER_TRADING
    assert result["failed"] == []
    assert result["window"]["iterations"] == [1, 2, 3]
    assert result["window"]["from"] and result["window"]["to"]
    assert rows(result)["min_win_rate"] == {
        "criterion": "min_win_rate", "required": 0.45, "actual": 0.6, "passed": True, "metric": "win_rate",
        "failing_iterations": [],
    }
    assert "min_probabilistic_sharpe" not in rows(result)  # off by default


@pytest.mark.parametrize(
    "criterion, criteria, metrics",
    [
        ("min_win_rate", {}, {"win_rate": 0.3}),
        ("min_sharpe_ratio", {}, {"sharpe": 0.2}),
        ("min_total_return", {}, {"total_return": -0.02}),
        ("min_signals", {}, {"num_trades": 2}),
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
    row = rows(result)[criterion]
    assert row["failing_iterations"] == ([3] if metrics else [1, 2, 3])
    assert criterion in describe_failures(result)


def test_min_iterations_failing_alone():
    agent = eligible_agent({"min_iterations": 5, "consistency_window": 2}, iterations=4)
    result = eligibility(agent)
    assert result["failed"] == ["min_iterations"]
    assert rows(result)["min_iterations"]["actual"] == 4


def test_consistency_window_failing_alone_when_it_is_not_full():
    agent = eligible_agent({"min_iterations": 1, "consistency_window": 4}, iterations=3)
    result = eligibility(agent)
    assert result["failed"] == ["consistency_window"]
    assert rows(result)["consistency_window"] == {
        "criterion": "consistency_window", "required": 4, "actual": 3, "passed": False,
        "note": "succeeded iterations in the window",
    }


def test_a_missing_metric_fails_its_criterion():
    agent = eligible_agent(iterations=2)
    add_iteration(agent, {}, sharpe=None)
    result = eligibility(agent)
    assert result["failed"] == ["min_sharpe_ratio"]
    assert rows(result)["min_sharpe_ratio"]["actual"] is None


def test_consistency_old_failure_outside_the_window_does_not_matter_one_inside_does():
    agent = eligible_agent(iterations=0)
    add_iteration(agent, {"win_rate": 0.1})  # #1, will fall out of a 3-wide window
    for _ in range(3):
        add_iteration(agent)  # #2..#4
    assert eligibility(agent)["eligible"]
    assert eligibility(agent)["window"]["iterations"] == [2, 3, 4]

    add_iteration(agent, {"win_rate": 0.1})  # #5: the latest fails
    add_iteration(agent)  # #6: the latest passes again, but #5 is still inside the window
    result = eligibility(agent)
    assert not result["eligible"]
    assert rows(result)["min_win_rate"]["failing_iterations"] == [5]
    assert rows(result)["min_win_rate"]["actual"] == 0.1  # the worst in the window


def test_failed_iterations_are_skipped_by_the_window():
    agent = eligible_agent(iterations=2)
    add_iteration(agent, status=IterationStatus.FAILED)
    add_iteration(agent)
    result = eligibility(agent)
    assert result["eligible"] and result["window"]["iterations"] == [1, 2, 4]


def test_after_a_demotion_only_newer_iterations_fill_the_window():
    agent = paper_agent()
    services.demote(agent, actor=agent.owner, reason="not convinced")
    agent.refresh_from_db()
    result = eligibility(agent)
    assert "consistency_window" in result["failed"]
    assert result["window"]["since_demotion"] is not None
    assert rows(result)["consistency_window"]["actual"] == 0
    assert rows(result)["min_iterations"]["passed"]  # the lifetime count still counts
    later = timezone.now() + dt.timedelta(seconds=1)
    for _ in range(3):
        add_iteration(agent, finished_at=later)
    assert eligibility(agent)["eligible"]


def test_live_eligibility_reads_the_paper_record(settings):
    settings.LAB_PAPER_MIN_BARS = 30
    settings.LAB_PAPER_MIN_TRADES = 2
    agent = paper_agent({"max_drawdown": 1.0, "min_sharpe_ratio": -10.0, "min_total_return": -1.0},
                        params={"fast": 3, "slow": 8})
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
    assert set(rows(result)) == {"paper_bars", "paper_trades", "max_drawdown", "min_total_return",
                                 "min_sharpe_ratio"}
    assert result["window"]["metrics"]["max_drawdown"] == rows(result)["max_drawdown"]["actual"]

    agent.graduation_criteria = {**agent.graduation_criteria, "min_sharpe_ratio": 10.0}
    assert eligibility(agent)["failed"] == ["min_sharpe_ratio"]


def test_live_trading_is_the_last_step():
    agent = make_agent()
    agent.status = AgentStatus.LIVE_TRADING
    result = eligibility(agent)
    assert result["verdict"] == "final" and result["target_status"] is None and result["criteria"] == []


def test_default_criteria_apply_without_overrides():
    agent = make_agent()
    for _ in range(9):
        add_iteration(agent, GOOD)
    result = eligibility(agent)
    assert result["failed"] == ["min_iterations"]  # the lab default is 10
    assert result["criteria_in_force"]["min_iterations"] == 10
    assert QUICK["min_iterations"] < 10
