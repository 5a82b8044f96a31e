"""The performance monitor: each rule fired by a realistic history and silent on a healthy one."""

import logging

import pytest
from django.db import connection
from django.db.models import Max
from django.test.utils import CaptureQueriesContext

from agents import signals
from agents.models import AgentStatus, IterationStatus, IterationTrigger, LearningIteration, TradingAgent
from agents.services import learning
from alerts import monitor, receivers
from alerts.models import AgentAlert, AlertType, Severity
from alerts.services import acknowledge_alert
from tests.factories import InstrumentFactory, make_agent

pytestmark = pytest.mark.django_db


@pytest.fixture
def notified(monkeypatch):
    calls = []
    monkeypatch.setattr("alerts.notify.notify_alert", calls.append)
    return calls


@pytest.fixture
def agent(notified):
    return make_agent(instrument=InstrumentFactory())


def set_status(agent, status):
    TradingAgent.objects.filter(pk=agent.pk).update(status=status)
    agent.refresh_from_db()


def add(agent, score=1.0, win_rate=0.55, trades=30, *, status=IterationStatus.SUCCEEDED, fallback_reason="",
        error=""):
    """An iteration row as the learning service leaves it."""
    number = (LearningIteration.objects.filter(agent=agent).aggregate(m=Max("number"))["m"] or 0) + 1
    succeeded = status == IterationStatus.SUCCEEDED
    return LearningIteration.objects.create(
        agent=agent, number=number, status=status, version_id=agent.current_version_id,
        score=score if succeeded else None,
        validation_metrics={"sharpe": score, "win_rate": win_rate, "num_trades": float(trades)} if succeeded else {},
        fallback_reason=fallback_reason, error=error or ("" if succeeded else "RuntimeError: data feed down"),
        refiner_used="optuna" if succeeded else "",
    )


def history(agent, rows):
    """Add iterations (score, win_rate[, trades]) running the monitor after each, as the signal does."""
    raised = []
    for row in rows:
        iteration = add(agent, *row) if isinstance(row, tuple) else row(agent)
        raised.extend(monitor.check_after_iteration(agent.pk, iteration.pk))
    return raised


def alerts(agent, alert_type=None):
    qs = AgentAlert.objects.filter(agent=agent)
    return list(qs.filter(alert_type=alert_type) if alert_type else qs)


HEALTHY = [(1.20, 0.55), (1.10, 0.54), (1.15, 0.56), (1.12, 0.53), (1.18, 0.55), (1.05, 0.52), (1.14, 0.54)]


def test_a_healthy_history_raises_nothing(agent):
    assert history(agent, HEALTHY) == []
    assert alerts(agent) == []


# --- PERFORMANCE_DEGRADATION: win rate -------------------------------------------------------
def test_win_rate_falling_more_than_ten_percent_over_three_iterations_warns(agent):
    history(agent, [(1.0, 0.60), (1.0, 0.55)])
    assert alerts(agent) == []
    history(agent, [(1.0, 0.50)])  # (0.60 - 0.50) / 0.60 = 16.7% > 10%
    (alert,) = alerts(agent, AlertType.PERFORMANCE_DEGRADATION)
    assert (alert.severity, alert.fingerprint) == (Severity.WARNING, "win_rate_drop")
    assert alert.details["relative_drop"] == pytest.approx(1 / 6)
    assert alert.details["win_rate_before"] == 0.60 and alert.details["win_rate"] == 0.50
    assert "60.0%" in alert.message and "50.0%" in alert.message


def test_win_rate_drop_just_under_the_threshold_is_silent(agent):
    history(agent, [(1.0, 0.60), (1.0, 0.58), (1.0, 0.545)])  # 9.2%
    assert alerts(agent) == []


def test_win_rate_drop_is_measured_over_succeeded_iterations_only(agent):
    history(agent, [(1.0, 0.60), lambda a: add(a, status=IterationStatus.FAILED), (1.0, 0.58)])
    assert alerts(agent, AlertType.PERFORMANCE_DEGRADATION) == []
    history(agent, [(1.0, 0.50)])  # t-2 is the 0.60 one, the failure in between is skipped
    (alert,) = alerts(agent, AlertType.PERFORMANCE_DEGRADATION)
    assert alert.details["from_iteration"] == 1


def test_win_rate_without_trades_is_no_evidence(agent):
    history(agent, [(1.0, 0.60, 20), (1.0, 0.55, 20), (0.9, 0.0, 0)])
    assert alerts(agent, AlertType.PERFORMANCE_DEGRADATION) == []


@pytest.mark.parametrize("status", [AgentStatus.PAPER_TRADING, AgentStatus.LIVE_TRADING])
def test_degradation_is_critical_for_trading_agents(agent, status):
    set_status(agent, status)
    history(agent, [(1.0, 0.60), (1.0, 0.55), (1.0, 0.50)])
    (alert,) = alerts(agent, AlertType.PERFORMANCE_DEGRADATION)
    assert alert.severity == Severity.CRITICAL and alert.details["agent_status"] == status


def test_a_continuing_decline_folds_into_the_open_alert(agent):
    history(agent, [(1.0, 0.60), (1.0, 0.55), (1.0, 0.50), (1.0, 0.45)])
    (alert,) = alerts(agent, AlertType.PERFORMANCE_DEGRADATION)
    assert alert.occurrence_count == 2 and alert.details["win_rate"] == 0.45


# --- PERFORMANCE_DEGRADATION: objective --------------------------------------------------------
def test_objective_below_its_recent_average_by_the_margin_warns(agent):
    history(agent, [(1.0, 0.55)] * 5)
    history(agent, [(0.80, 0.55)])  # 20% below the average 1.0: within the 25% margin
    assert alerts(agent) == []
    history(agent, [(0.70, 0.55)])  # average of the previous 5 = 0.96; (0.96 - 0.70) / 0.96 = 27%
    (alert,) = alerts(agent, AlertType.PERFORMANCE_DEGRADATION)
    assert alert.fingerprint == "objective_drop" and alert.severity == Severity.WARNING
    assert alert.details["recent_average"] == pytest.approx(0.96)
    assert alert.details["relative_shortfall"] == pytest.approx(0.26 / 0.96)
    assert alert.details["recent_iterations"] == [6, 5, 4, 3, 2]


def test_objective_rule_waits_for_a_full_window(agent, settings):
    settings.LAB_ALERT_RECENT_WINDOW = 5
    history(agent, [(1.0, 0.55)] * 4 + [(0.2, 0.55)])  # only 4 previous iterations
    assert alerts(agent, AlertType.PERFORMANCE_DEGRADATION) == []


def test_objective_rule_with_a_negative_average(agent):
    history(agent, [(-0.5, 0.45)] * 5 + [(-0.6, 0.45)])  # 20% more negative: quiet
    assert alerts(agent) == []
    history(agent, [(-0.75, 0.45)])  # mean -0.52; (-0.52 + 0.75) / 0.52 = 44%
    (alert,) = alerts(agent, AlertType.PERFORMANCE_DEGRADATION)
    assert alert.fingerprint == "objective_drop"


@pytest.mark.parametrize(
    ("score", "recent", "fires"),
    [
        (0.70, [1.0] * 5, True),          # (1 - 0.7) / 1 = 0.30 > 0.25
        (0.76, [1.0] * 5, False),         # 0.24
        (-0.70, [-0.5] * 5, True),        # (-0.5 + 0.7) / 0.5 = 0.40: more negative by 40%
        (-0.60, [-0.5] * 5, False),       # 0.20
        (-0.01, [0.01] * 5, False),       # near 0: (0.01 + 0.01) / max(0.01, 0.1) = 0.2
        (-0.03, [0.01] * 5, True),        # 0.04 / 0.1 = 0.4
        (1.50, [1.0] * 5, False),         # better is never a drop
        (0.5, [1.0, 1.0, None, 1.0, 1.0], False),  # a hole in the window: no verdict
    ],
)
def test_objective_drop_formula(score, recent, fires):
    found = monitor.objective_drop(score, recent, margin=0.25, floor=0.1)
    assert (found is not None) is fires


@pytest.mark.parametrize(
    ("then", "now", "fires"),
    [((0.60, 30), (0.50, 30), True), ((0.60, 30), (0.55, 30), False), ((0.0, 30), (0.0, 30), False),
     ((0.60, 0), (0.30, 30), False), ((0.60, 30), (0.0, 0), False), ((0.5, 30), (0.7, 30), False)],
)
def test_win_rate_drop_formula(then, now, fires):
    assert (monitor.win_rate_drop(then[0], then[1], now[0], now[1], 0.10) is not None) is fires


# --- ERROR -----------------------------------------------------------------------------------
def failed(agent):
    return add(agent, status=IterationStatus.FAILED)


def test_a_failed_iteration_warns_and_consecutive_failures_become_critical(agent, settings):
    settings.LAB_ALERT_ERROR_CRITICAL_AFTER = 3
    history(agent, [(1.0, 0.55), failed])
    (alert,) = alerts(agent, AlertType.ERROR)
    assert (alert.severity, alert.fingerprint) == (Severity.WARNING, "iteration_failed")
    assert "data feed down" in alert.message and alert.details["consecutive_failures"] == 1
    history(agent, [failed])
    alert.refresh_from_db()
    assert alert.severity == Severity.WARNING and alert.details["consecutive_failures"] == 2
    history(agent, [failed])
    alert.refresh_from_db()
    assert alert.severity == Severity.CRITICAL and alert.occurrence_count == 3
    assert alert.details["consecutive_failures"] == 3 and "3+ consecutive failures" in alert.message


def test_a_success_breaks_the_failure_streak(agent, settings):
    settings.LAB_ALERT_ERROR_CRITICAL_AFTER = 3
    history(agent, [failed, failed, (1.0, 0.55), failed])
    (alert,) = alerts(agent, AlertType.ERROR)
    assert alert.severity == Severity.WARNING and alert.occurrence_count == 3
    assert alert.details["consecutive_failures"] == 1


def test_a_refiner_fallback_warns(agent):
    history(agent, [lambda a: add(a, fallback_reason="claude failed (RefinerError: 529 overloaded); used Optuna")])
    (alert,) = alerts(agent, AlertType.ERROR)
    assert (alert.severity, alert.fingerprint) == (Severity.WARNING, "refiner_fallback")
    assert "529 overloaded" in alert.message


# --- MILESTONE -------------------------------------------------------------------------------
def test_iteration_count_milestones_fire_once_at_the_exact_count(agent, settings):
    settings.LAB_ALERT_MILESTONES = (10, 50)
    history(agent, [(1.0, 0.55)] * 5 + [failed] + [(1.0, 0.55)] * 4)
    assert alerts(agent, AlertType.MILESTONE) == []  # 9 succeeded
    history(agent, [(1.0, 0.55)])
    (alert,) = alerts(agent, AlertType.MILESTONE)
    assert (alert.fingerprint, alert.severity, alert.details["iteration"]) == ("iterations:10", Severity.INFO, 11)
    acknowledge_alert(alert, user=agent.owner)
    tenth = LearningIteration.objects.get(agent=agent, number=11)
    monitor.check_after_iteration(agent.pk, tenth.pk)  # the same event seen again stays quiet
    history(agent, [(1.0, 0.55)])
    assert len(alerts(agent, AlertType.MILESTONE)) == 1


def test_a_new_best_objective_is_a_milestone_folding_successive_bests(agent):
    history(agent, [(1.0, 0.55)])
    assert alerts(agent) == []  # the first iteration is no "new best"
    history(agent, [(1.0, 0.55), (0.9, 0.55)])
    assert alerts(agent) == []  # equal and lower are not
    history(agent, [(1.2, 0.55)])
    (alert,) = alerts(agent, AlertType.MILESTONE)
    assert alert.fingerprint == "best_objective" and alert.details["previous_best"] == 1.0
    history(agent, [(1.3, 0.55)])
    alert.refresh_from_db()
    assert alert.occurrence_count == 2 and alert.details["score"] == 1.3 and "1.3000" in alert.message


def test_win_rate_milestone_marks_crossing_the_level_with_enough_trades(agent, settings):
    settings.LAB_ALERT_MILESTONE_WIN_RATE = 0.70
    settings.LAB_ALERT_MILESTONE_MIN_TRADES = 10
    history(agent, [(1.0, 0.75, 5)])  # too few trades
    assert alerts(agent) == []
    history(agent, [(1.0, 0.72, 12)])
    (alert,) = alerts(agent, AlertType.MILESTONE)
    assert alert.fingerprint == "win_rate:0.7" and alert.details["num_trades"] == 12
    acknowledge_alert(alert, user=agent.owner)
    history(agent, [(1.0, 0.71, 12)])  # still above: not news
    assert len(alerts(agent, AlertType.MILESTONE)) == 1
    history(agent, [(1.0, 0.65, 12), (1.0, 0.70, 12)])  # fell below, then reached it again
    assert len(alerts(agent, AlertType.MILESTONE)) == 2


# --- CONVERGENCE, signals, robustness and cost --------------------------------------------
def test_convergence_signal_raises_an_info_alert(agent):
    signals.learning_converged.send(
        sender=TradingAgent, agent_id=agent.pk, reason="converged: mean |improvement| 0.001 below 0.01",
        details={"threshold": 0.01},
    )
    (alert,) = alerts(agent, AlertType.CONVERGENCE)
    assert alert.severity == Severity.INFO and alert.details["threshold"] == 0.01
    assert "mean |improvement|" in alert.message


def test_iteration_finished_reaches_the_monitor(agent):
    iteration = add(agent, status=IterationStatus.FAILED)
    signals.iteration_finished.send(sender=TradingAgent, agent_id=agent.pk, iteration_id=iteration.pk,
                                    status=iteration.status)
    assert len(alerts(agent, AlertType.ERROR)) == 1


def test_one_agents_monitor_failure_does_not_stop_the_others(agent, monkeypatch, caplog):
    other = make_agent(instrument=agent.instrument)
    real = monitor.check_after_iteration

    def broken_for_first(agent_id, iteration_id):
        if agent_id == agent.pk:
            raise RuntimeError("monitor bug")
        return real(agent_id, iteration_id)

    monkeypatch.setattr(monitor, "check_after_iteration", broken_for_first)
    for a in (agent, other):
        iteration = add(a, status=IterationStatus.FAILED)
        signals.iteration_finished.send(sender=TradingAgent, agent_id=a.pk, iteration_id=iteration.pk,
                                        status=iteration.status)
    assert alerts(agent) == [] and len(alerts(other, AlertType.ERROR)) == 1
    assert "monitor bug" in caplog.text


def test_one_broken_rule_does_not_silence_the_others(agent, monkeypatch, caplog):
    def broken(*args):
        raise RuntimeError("rule bug")

    monkeypatch.setattr(monitor, "_degradation", broken)
    history(agent, [(1.0, 0.55), lambda a: add(a, score=1.2, fallback_reason="budget exhausted")])
    assert {a.fingerprint for a in alerts(agent)} == {"refiner_fallback", "best_objective"}
    assert "rule bug" in caplog.text


def test_receivers_swallow_and_log(monkeypatch, caplog):
    monkeypatch.setattr(monitor, "on_converged", lambda *a: 1 / 0)
    with caplog.at_level(logging.ERROR):
        receivers.on_learning_converged(sender=TradingAgent, agent_id="x", reason="r", details={})
    assert "convergence alert failed" in caplog.text


def test_the_monitor_reads_a_bounded_number_of_rows(agent):
    def queries_for_last():
        last = LearningIteration.objects.filter(agent=agent).order_by("-number").first()
        with CaptureQueriesContext(connection) as ctx:
            monitor.check_after_iteration(agent.pk, last.pk)
        return len(ctx.captured_queries)

    LearningIteration.objects.bulk_create(
        [LearningIteration(agent=agent, number=n, status=IterationStatus.SUCCEEDED, score=1.0,
                           validation_metrics={"win_rate": 0.5, "num_trades": 20.0}) for n in range(1, 21)]
    )
    short = queries_for_last()
    LearningIteration.objects.bulk_create(
        [LearningIteration(agent=agent, number=n, status=IterationStatus.SUCCEEDED, score=1.0,
                           validation_metrics={"win_rate": 0.5, "num_trades": 20.0}) for n in range(21, 400)]
    )
    assert queries_for_last() == short <= 3


# --- end to end: real iterations reaching the monitor through the signal -------------------
def test_real_iterations_reach_the_monitor_after_commit(notified, settings, django_capture_on_commit_callbacks):
    settings.LAB_ALERT_MILESTONES = (2,)
    agent = make_agent()  # with bars: the real pipeline
    with django_capture_on_commit_callbacks(execute=True):
        first, _ = learning.iteration_run_now(agent, trigger=IterationTrigger.MANUAL)
    assert first.status == IterationStatus.SUCCEEDED and alerts(agent) == []
    with django_capture_on_commit_callbacks(execute=True):
        second, _ = learning.iteration_run_now(agent, trigger=IterationTrigger.MANUAL)
    assert second.status == IterationStatus.SUCCEEDED
    (alert,) = alerts(agent)  # same version, same bars: same score, so no "new best"
    assert (alert.alert_type, alert.fingerprint) == (AlertType.MILESTONE, "iterations:2")
    assert notified == [alert.pk]


def test_a_real_failed_iteration_raises_an_error_alert(notified, monkeypatch, django_capture_on_commit_callbacks):
    agent = make_agent()

    def no_data(iteration):
        raise RuntimeError("bars unavailable")

    monkeypatch.setattr(learning, "_execute", no_data)
    with django_capture_on_commit_callbacks(execute=True):
        iteration, _ = learning.iteration_run_now(agent, trigger=IterationTrigger.MANUAL)
    assert iteration.status == IterationStatus.FAILED
    (alert,) = alerts(agent, AlertType.ERROR)
    assert "bars unavailable" in alert.message and notified == [alert.pk]


def test_a_monitor_failure_never_fails_the_iteration(notified, monkeypatch, django_capture_on_commit_callbacks,
                                                     caplog):
    agent = make_agent()
    monkeypatch.setattr(monitor, "check_after_iteration", lambda *a: 1 / 0)
    with django_capture_on_commit_callbacks(execute=True):
        iteration, _ = learning.iteration_run_now(agent, trigger=IterationTrigger.MANUAL)
    iteration.refresh_from_db()
    assert iteration.status == IterationStatus.SUCCEEDED
    assert "performance monitor failed" in caplog.text
