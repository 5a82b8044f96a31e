"""The performance monitor: each rule fired by a realistic history and silent on a healthy one."""

import logging
import math

import pytest
from django.db import connection
from django.db.models import Max
from django.test.utils import CaptureQueriesContext
from scipy import stats as sps

from agents import signals
from agents.models import AgentStatus, IterationStatus, IterationTrigger, LearningIteration, TradingAgent
from agents.services import learning
from alerts import monitor, receivers
from alerts.models import AgentAlert, AlertType, Severity
from alerts.services import alert_acknowledge
from tests.factories import InstrumentFactory, make_agent

pytestmark = pytest.mark.django_db

BARS_PER_YEAR = 252  # InstrumentFactory's daily bars
TEST_BARS = 504  # two years of sealed test window
MANY = 400  # trades: enough for a 10-point fall in win rate to be significant at 1%
Z99 = sps.norm.ppf(0.99)


def ref_drop_p(wr_then, n_then, wr_now, n_now):
    """One-sided p of a fall in win rate, independently: Pearson's chi-square on the 2x2 table
    (without continuity correction) is the square of the pooled two-proportion z."""
    wins = (round(wr_then * n_then), round(wr_now * n_now))
    table = [[wins[0], n_then - wins[0]], [wins[1], n_now - wins[1]]]
    chi2 = sps.chi2_contingency(table, correction=False).statistic
    z = math.copysign(math.sqrt(chi2), wins[0] / n_then - wins[1] / n_now)
    return sps.norm.sf(z)


def ref_upper(score, bars):
    """Annualised sealed-window Sharpe + z_0.99 standard errors (Lo 2002, normal returns)."""
    sr = score / math.sqrt(BARS_PER_YEAR)
    return score + Z99 * math.sqrt((1 + sr * sr / 2) / (bars - 1)) * math.sqrt(BARS_PER_YEAR)


@pytest.fixture
def agent(notified):
    return make_agent(instrument=InstrumentFactory())


def set_status(agent, status):
    TradingAgent.objects.filter(pk=agent.pk).update(status=status)
    agent.refresh_from_db()


def add(agent, score=1.0, win_rate=0.55, trades=30, bars=TEST_BARS, *, status=IterationStatus.SUCCEEDED,
        fallback_reason="", error="", evidence=True):
    """An iteration row as the learning service leaves it: score and validation_metrics are the
    sealed test window's, and evidence holds that window's per-bar Sharpe statistics."""
    number = (LearningIteration.objects.filter(agent=agent).aggregate(m=Max("number"))["m"] or 0) + 1
    succeeded = status == IterationStatus.SUCCEEDED
    stats = {"test_sharpe": score / math.sqrt(BARS_PER_YEAR), "test_bars": bars, "test_skew": 0.0,
             "test_kurtosis": 3.0} if succeeded and evidence else {}
    return LearningIteration.objects.create(
        agent=agent, number=number, status=status, version_id=agent.current_version_id,
        score=score if succeeded else None,
        validation_metrics={"sharpe": score, "win_rate": win_rate, "num_trades": float(trades)} if succeeded else {},
        evidence=stats, fallback_reason=fallback_reason,
        error=error or ("" if succeeded else "RuntimeError: data feed down"),
        refiner_used="optuna" if succeeded else "",
    )


def history(agent, rows):
    """Add iterations (score, win_rate[, trades[, bars]]) running the monitor after each, as the signal does."""
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
def test_a_significant_fall_in_win_rate_over_enough_trades_warns(agent):
    history(agent, [(1.0, 0.60, MANY), (1.0, 0.55, MANY)])
    assert alerts(agent) == []
    history(agent, [(1.0, 0.50, MANY)])  # (0.60 - 0.50) / 0.60 = 16.7% > 10%, over 400 trades each
    (alert,) = alerts(agent, AlertType.PERFORMANCE_DEGRADATION)
    assert (alert.severity, alert.fingerprint) == (Severity.WARNING, "win_rate_drop")
    assert alert.details["relative_drop"] == pytest.approx(1 / 6)
    assert alert.details["win_rate_before"] == 0.60 and alert.details["win_rate"] == 0.50
    p = ref_drop_p(0.60, MANY, 0.50, MANY)
    assert p < 0.01  # z ~ 2.84
    assert alert.details["p_value"] == pytest.approx(p, rel=1e-9)
    assert (alert.details["alpha"], alert.details["min_trades"]) == (0.01, 20)
    assert (alert.details["trades_before"], alert.details["trades"]) == (MANY, MANY)
    assert "60.0%" in alert.message and "50.0%" in alert.message and "400 and 400 trades" in alert.message


def test_the_demo_case_two_then_three_trades_is_no_evidence(agent):
    """100% of 2 trades -> 66.7% of 3 trades: 33% relative, and it once demoted a paper trading agent."""
    set_status(agent, AgentStatus.PAPER_TRADING)
    history(agent, [(1.0, 1.0, 2), (1.0, 1.0, 2), (1.0, 2 / 3, 3), (1.0, 0.0, 3)])
    assert alerts(agent, AlertType.PERFORMANCE_DEGRADATION) == []


def test_a_large_fall_that_is_within_the_noise_is_silent(agent):
    # 16.7% relative over 30 trades each: past the threshold but p ~ 0.22
    assert ref_drop_p(0.60, 30, 0.50, 30) > 0.1
    history(agent, [(1.0, 0.60, 30), (1.0, 0.55, 30), (1.0, 0.50, 30)])
    assert alerts(agent, AlertType.PERFORMANCE_DEGRADATION) == []


def test_a_significant_fall_just_under_the_threshold_is_silent(agent):
    # 9.2% relative over 10,000 trades each: highly significant, but not large enough to matter
    assert ref_drop_p(0.60, 10_000, 0.545, 10_000) < 1e-10
    history(agent, [(1.0, 0.60, 10_000), (1.0, 0.58, 10_000), (1.0, 0.545, 10_000)])
    assert alerts(agent) == []


@pytest.mark.parametrize(("n_then", "n_now", "fires"), [(20, 20, True), (19, 20, False), (20, 19, False)])
def test_win_rate_rule_needs_the_minimum_number_of_trades_on_both_sides(agent, n_then, n_now, fires):
    # 90% -> 40%: significant even over 20 trades each (p ~ 5e-4)
    assert ref_drop_p(0.90, 20, 0.40, 20) < 0.001
    history(agent, [(1.0, 0.90, n_then), (1.0, 0.90, n_then), (1.0, 0.40, n_now)])
    assert len(alerts(agent, AlertType.PERFORMANCE_DEGRADATION)) == int(fires)


def test_the_minimum_number_of_trades_comes_from_settings(agent, settings):
    settings.LAB_ALERT_MIN_TRADES = 50
    history(agent, [(1.0, 0.90, 40), (1.0, 0.90, 40), (1.0, 0.40, 40)])
    assert alerts(agent, AlertType.PERFORMANCE_DEGRADATION) == []


def test_win_rate_drop_is_measured_over_succeeded_iterations_only(agent):
    history(agent, [(1.0, 0.60, MANY), lambda a: add(a, status=IterationStatus.FAILED), (1.0, 0.58, MANY)])
    assert alerts(agent, AlertType.PERFORMANCE_DEGRADATION) == []
    history(agent, [(1.0, 0.50, MANY)])  # t-2 is the 0.60 one, the failure in between is skipped
    (alert,) = alerts(agent, AlertType.PERFORMANCE_DEGRADATION)
    assert alert.details["from_iteration"] == 1


def test_win_rate_without_trades_is_no_evidence(agent):
    history(agent, [(1.0, 0.60, MANY), (1.0, 0.55, MANY), (0.9, 0.0, 0)])
    assert alerts(agent, AlertType.PERFORMANCE_DEGRADATION) == []


@pytest.mark.parametrize("status", [AgentStatus.PAPER_TRADING, AgentStatus.LIVE_TRADING])
def test_degradation_is_critical_for_trading_agents(agent, status):
    set_status(agent, status)
    history(agent, [(1.0, 0.60, MANY), (1.0, 0.55, MANY), (1.0, 0.50, MANY)])
    (alert,) = alerts(agent, AlertType.PERFORMANCE_DEGRADATION)
    assert alert.severity == Severity.CRITICAL and alert.details["agent_status"] == status


def test_a_continuing_decline_folds_into_the_open_alert(agent):
    history(agent, [(1.0, 0.60, MANY), (1.0, 0.55, MANY), (1.0, 0.50, MANY), (1.0, 0.45, MANY)])
    (alert,) = alerts(agent, AlertType.PERFORMANCE_DEGRADATION)
    assert alert.occurrence_count == 2 and alert.details["win_rate"] == 0.45
    assert alert.details["p_value"] == pytest.approx(ref_drop_p(0.55, MANY, 0.45, MANY), rel=1e-9)


@pytest.mark.parametrize(
    ("then", "now", "fires"),
    [((0.60, MANY), (0.50, MANY), True), ((0.60, 30), (0.50, 30), False),  # the same drop over fewer trades
     ((0.60, MANY), (0.55, MANY), False),  # 8.3%: under the threshold
     ((0.0, MANY), (0.0, MANY), False), ((0.60, 0), (0.30, MANY), False), ((0.60, MANY), (0.0, 0), False),
     ((0.5, MANY), (0.7, MANY), False), ((0.90, 20), (0.40, 20), True), ((0.90, 19), (0.40, 20), False),
     ((None, MANY), (0.4, MANY), False), ((0.6, MANY), (float("nan"), MANY), False)],
)
def test_win_rate_drop_formula(then, now, fires):
    found = monitor.win_rate_drop(then[0], then[1], now[0], now[1], 0.10, min_trades=20, alpha=0.01)
    assert (found is not None) is fires
    if fires:
        drop, p = found
        assert drop == pytest.approx((then[0] - now[0]) / then[0])
        assert p == pytest.approx(ref_drop_p(then[0], then[1], now[0], now[1]), rel=1e-9)


def test_win_rate_drop_alpha_is_the_significance_cut():
    p = ref_drop_p(0.60, 30, 0.50, 30)
    assert monitor.win_rate_drop(0.60, 30, 0.50, 30, 0.10, min_trades=20, alpha=p * 0.999) is None
    _drop, found = monitor.win_rate_drop(0.60, 30, 0.50, 30, 0.10, min_trades=20, alpha=p * 1.001)
    assert found == pytest.approx(p, rel=1e-9)


# --- PERFORMANCE_DEGRADATION: objective --------------------------------------------------------
def test_an_objective_fall_beyond_its_confidence_bound_warns(agent):
    history(agent, [(2.0, 0.55)] * 5)
    # 40% below the average 2.0, past the 25% margin, but two years of bars cannot tell 1.2 from
    # 2.0: the upper 99% bound of the Sharpe is ~2.85
    assert ref_upper(1.2, TEST_BARS) > 2.0
    history(agent, [(1.2, 0.55)])
    assert alerts(agent) == []
    # average of the previous 5 = 1.84; a Sharpe of 0 has an upper bound ~1.65: below it
    assert ref_upper(0.0, TEST_BARS) < 1.84
    history(agent, [(0.0, 0.55)])
    (alert,) = alerts(agent, AlertType.PERFORMANCE_DEGRADATION)
    assert alert.fingerprint == "objective_drop" and alert.severity == Severity.WARNING
    assert alert.details["recent_average"] == pytest.approx(1.84)
    assert alert.details["relative_shortfall"] == pytest.approx(1.0)
    assert alert.details["recent_iterations"] == [6, 5, 4, 3, 2]
    assert alert.details["upper_confidence_bound"] == pytest.approx(ref_upper(0.0, TEST_BARS), rel=1e-9)
    assert alert.details["alpha"] == 0.01 and alert.details["trades"] == 30


def test_the_same_fall_on_a_long_enough_window_warns(agent):
    # 1.84 -> 1.2 is noise over 504 bars but not over 40 years of them (upper bound ~1.57)
    long = 40 * BARS_PER_YEAR
    assert ref_upper(1.2, long) < 1.84 < ref_upper(1.2, TEST_BARS)
    history(agent, [(2.0, 0.55, 30, long)] * 4 + [(1.2, 0.55, 30, long)])
    assert alerts(agent) == []  # only 4 before: no full window
    history(agent, [(1.2, 0.55, 30, TEST_BARS)])
    assert alerts(agent, AlertType.PERFORMANCE_DEGRADATION) == []  # mean 1.84, within the noise
    history(agent, [(1.2, 0.55, 30, long)])  # mean 1.68 > 1.57
    (alert,) = alerts(agent, AlertType.PERFORMANCE_DEGRADATION)
    assert alert.details["upper_confidence_bound"] == pytest.approx(ref_upper(1.2, long), rel=1e-9)


@pytest.mark.parametrize(("trades", "fires"), [(19, False), (20, True)])
def test_objective_rule_needs_the_minimum_number_of_trades(agent, trades, fires):
    history(agent, [(2.0, 0.55)] * 5 + [(-1.0, 0.55, trades)])
    assert len(alerts(agent, AlertType.PERFORMANCE_DEGRADATION)) == int(fires)


def test_objective_rule_without_the_windows_statistics_is_silent(agent):
    """An iteration from before the protocol stored no test-window statistics: no bound, no alert."""
    history(agent, [(2.0, 0.55)] * 5 + [lambda a: add(a, score=-1.0, evidence=False)])
    assert alerts(agent, AlertType.PERFORMANCE_DEGRADATION) == []


def test_a_non_sharpe_objective_is_judged_on_the_margin_alone(agent):
    TradingAgent.objects.filter(pk=agent.pk).update(objective="total_return")
    agent.refresh_from_db()
    history(agent, [(1.0, 0.55)] * 5)
    history(agent, [(0.80, 0.55)])  # 20% below the average 1.0: within the 25% margin
    assert alerts(agent) == []
    history(agent, [(0.70, 0.55)])  # average of the previous 5 = 0.96; (0.96 - 0.70) / 0.96 = 27%
    (alert,) = alerts(agent, AlertType.PERFORMANCE_DEGRADATION)
    assert alert.fingerprint == "objective_drop"
    assert alert.details["recent_average"] == pytest.approx(0.96)
    assert alert.details["relative_shortfall"] == pytest.approx(0.26 / 0.96)
    assert alert.details["upper_confidence_bound"] is None


def test_objective_rule_waits_for_a_full_window(agent, settings):
    settings.LAB_ALERT_RECENT_WINDOW = 5
    history(agent, [(2.0, 0.55)] * 4 + [(-3.0, 0.55)])  # only 4 previous iterations
    assert alerts(agent, AlertType.PERFORMANCE_DEGRADATION) == []


def test_objective_rule_with_a_negative_average(agent):
    history(agent, [(-0.5, 0.45)] * 5 + [(-0.6, 0.45)])  # 20% more negative: quiet
    assert alerts(agent) == []
    assert ref_upper(-3.0, TEST_BARS) < -0.52
    history(agent, [(-3.0, 0.45)])  # mean -0.52, and even the upper bound (~-1.34) is below it
    (alert,) = alerts(agent, AlertType.PERFORMANCE_DEGRADATION)
    assert alert.fingerprint == "objective_drop"
    assert alert.details["upper_confidence_bound"] == pytest.approx(ref_upper(-3.0, TEST_BARS), rel=1e-9)


def test_sharpe_upper_bound_with_skewed_fat_tailed_returns(agent):
    """Mertens' standard error: negative skew and fat tails widen the bound."""
    sr, t, skew, kurt = 0.05, 504, -1.0, 8.0
    iteration = add(agent, score=sr * math.sqrt(BARS_PER_YEAR))
    iteration.evidence = {"test_sharpe": sr, "test_bars": t, "test_skew": skew, "test_kurtosis": kurt}
    se = math.sqrt((1 - skew * sr + (kurt - 1) / 4 * sr * sr) / (t - 1)) * math.sqrt(BARS_PER_YEAR)
    assert monitor.sharpe_upper_bound(iteration, Z99) == pytest.approx(iteration.score + Z99 * se, rel=1e-9)
    assert monitor.sharpe_upper_bound(iteration, Z99) > ref_upper(iteration.score, t)
    iteration.evidence = {}
    assert monitor.sharpe_upper_bound(iteration, Z99) is None


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
    alert_acknowledge(alert, user=agent.owner)
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


def test_the_best_before_counts_every_earlier_iteration_not_only_the_recent_window(agent, settings):
    settings.LAB_ALERT_RECENT_WINDOW = 3
    history(agent, [(2.0, 0.55)] + [(1.0, 0.55)] * 6)
    history(agent, [(1.5, 0.55)])  # best of the recent window, not of the agent: no milestone
    assert [a.fingerprint for a in alerts(agent, AlertType.MILESTONE)] == []
    history(agent, [(2.5, 0.55)])
    (alert,) = alerts(agent, AlertType.MILESTONE)
    assert alert.details["previous_best"] == 2.0


def test_win_rate_milestone_marks_crossing_the_level_with_enough_trades(agent, settings):
    settings.LAB_ALERT_MILESTONE_WIN_RATE = 0.70
    settings.LAB_ALERT_MILESTONE_MIN_TRADES = 10
    history(agent, [(1.0, 0.75, 5)])  # too few trades
    assert alerts(agent) == []
    history(agent, [(1.0, 0.72, 12)])
    (alert,) = alerts(agent, AlertType.MILESTONE)
    assert alert.fingerprint == "win_rate:0.7" and alert.details["num_trades"] == 12
    alert_acknowledge(alert, user=agent.owner)
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
