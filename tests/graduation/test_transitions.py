"""Graduate, demote, re-pin; automatic graduation and demotion; GRADUATION_READY once per episode."""

import pytest
from django.contrib.auth.models import Permission

from agents import signals
from agents.models import (
    ActivityLog,
    AgentStatus,
    ExamPurpose,
    ExamReading,
    LearningIteration,
    Refinement,
    TradingAgent,
)
from agents.services import approval, decisions
from alerts.models import AgentAlert, AlertType, Severity
from alerts.services import alert_raise
from core.errors import Conflict, PermissionRefused, ValidationFailed
from graduation import reactions, services
from graduation.eligibility import eligibility
from graduation.models import AccountRole, EligibilityEpisode, EventKind, GraduationEvent, PaperAccount
from graduation.trading.runner import paper_tick
from tests.factories import UserFactory, make_agent
from tests.graduation.helpers import PAPER_LENIENT, add_iteration, append_bars, eligible_agent, paper_agent

pytestmark = pytest.mark.django_db


def finish(iteration):
    """What agents does after an iteration commits (the alerts monitor, then graduation)."""
    signals.iteration_finished.send(sender=TradingAgent, agent_id=iteration.agent_id, iteration_id=iteration.pk,
                                    status=iteration.status)


def ready_alerts(agent):
    return AgentAlert.objects.filter(agent=agent, alert_type=AlertType.GRADUATION_READY)


def approver():
    user = UserFactory()
    user.user_permissions.add(Permission.objects.get(codename="approve_live_trading"))
    return type(user).objects.get(pk=user.pk)  # fresh permission cache


def live_ready(settings):
    settings.LAB_PAPER_MIN_BARS = 20
    settings.LAB_PAPER_MIN_TRADES = 1
    agent = paper_agent(PAPER_LENIENT, params={"fast": 3, "slow": 8})
    append_bars(agent.instrument, 40, seed=9)
    paper_tick()
    return agent


# --- learning -> paper -----------------------------------------------------------------------------------
def test_a_person_graduates_an_eligible_agent_to_paper_trading():
    agent = eligible_agent()
    event = services.agent_graduate(agent, actor=agent.owner, reason="ready")
    agent.refresh_from_db()
    assert agent.status == AgentStatus.PAPER_TRADING
    assert (event.kind, event.from_status, event.to_status, event.automatic) == (
        EventKind.GRADUATE, AgentStatus.LEARNING, AgentStatus.PAPER_TRADING, False)
    assert event.actor == agent.owner and event.reason == "ready" and event.version == agent.current_version
    assert event.metrics_snapshot["verdict"] == "eligible" and event.metrics_snapshot["window"]["iterations"] == [3]
    assert {"min_dsr", "max_pbo", "min_track_record"} <= {r["criterion"] for r in event.metrics_snapshot["criteria"]}
    # Reading the sealed window's evidence for the decision is an exam reading.
    reading = ExamReading.objects.get(agent=agent, purpose=ExamPurpose.GRADUATION)
    assert reading.iteration_id == LearningIteration.objects.get(agent=agent, number=3).pk
    assert (reading.version_id, reading.bars) == (agent.current_version_id, 200)
    account = PaperAccount.objects.get(agent=agent, closed_at__isnull=True)
    assert not account.live and account.initial_capital == agent.initial_capital
    log = ActivityLog.objects.get(agent=agent, event="graduated")
    assert "paper_trading" in log.message and log.actor == agent.owner


def test_an_ineligible_agent_is_refused_with_the_failed_criteria_and_nothing_changes():
    agent = eligible_agent(iterations=2)
    add_iteration(agent, {"win_rate": 0.2})
    with pytest.raises(Conflict) as exc:
        services.agent_graduate(agent, actor=agent.owner)
    assert exc.value.status_code == 409
    assert "min_win_rate: 0.2 vs required 0.4 (in 0 of 5 folds, needs 3; sealed test 0.2)" in (
        exc.value.errors["eligibility"])
    agent.refresh_from_db()
    assert agent.status == AgentStatus.LEARNING
    assert not GraduationEvent.objects.filter(agent=agent).exists()
    assert not PaperAccount.objects.filter(agent=agent).exists()
    assert not ExamReading.objects.filter(agent=agent, purpose=ExamPurpose.GRADUATION).exists()


def test_automatic_graduation_after_an_iteration_when_auto_graduate_is_on():
    agent = eligible_agent(iterations=2)
    agent.auto_graduate = True
    agent.save(update_fields=["auto_graduate"])
    finish(add_iteration(agent))
    agent.refresh_from_db()
    assert agent.status == AgentStatus.PAPER_TRADING
    event = GraduationEvent.objects.get(agent=agent)
    assert event.automatic and event.actor is None and event.actor_label == "auto-graduation"
    assert "after iteration #3" in event.reason
    assert ready_alerts(agent).count() == 1
    assert PaperAccount.objects.filter(agent=agent, closed_at__isnull=True).exists()


def test_without_auto_graduate_an_eligible_agent_only_gets_the_alert():
    agent = eligible_agent(iterations=2)
    finish(add_iteration(agent))
    agent.refresh_from_db()
    assert agent.status == AgentStatus.LEARNING
    alert = ready_alerts(agent).get()
    assert alert.severity == Severity.INFO and alert.fingerprint == "graduation:learning:iteration:3"


def test_graduation_ready_is_raised_once_per_eligibility_episode():
    agent = eligible_agent(iterations=2)
    finish(add_iteration(agent))  # #3: eligible, episode 1 begins
    finish(add_iteration(agent))  # #4: still eligible, same episode
    assert ready_alerts(agent).count() == 1
    ready_alerts(agent).update(acknowledged=True)  # even acknowledged, the episode is not re-announced
    finish(add_iteration(agent))  # #5
    assert ready_alerts(agent).count() == 1

    finish(add_iteration(agent, {"sharpe": -1.0}))  # #6 fails: the episode ends
    finish(add_iteration(agent, evidence={"dsr": 0.5}))  # #7 fails on the deflated Sharpe: still ended
    assert ready_alerts(agent).count() == 1
    finish(add_iteration(agent))  # #8: the latest evaluation passes again: a new episode
    finish(add_iteration(agent))  # #9: same episode
    assert list(ready_alerts(agent).order_by("id").values_list("fingerprint", flat=True)) == [
        "graduation:learning:iteration:3", "graduation:learning:iteration:8"]


def test_a_failing_receiver_never_breaks_the_iteration(monkeypatch):
    agent = eligible_agent()

    def boom(*args, **kwargs):
        raise RuntimeError("broken")

    monkeypatch.setattr("graduation.reactions.eligibility", boom)
    finish(add_iteration(agent))  # no exception
    agent.refresh_from_db()
    assert agent.status == AgentStatus.LEARNING


# --- paper -> live -----------------------------------------------------------------------------------
def test_live_needs_the_permission_even_for_the_owner(settings):
    agent = live_ready(settings)
    with pytest.raises(PermissionRefused) as exc:
        services.agent_graduate(agent, actor=agent.owner, reason="r", confirm=True)
    assert exc.value.status_code == 403 and "graduation.approve_live_trading" in exc.value.errors["permission"]


def test_live_is_never_automatic(settings):
    agent = live_ready(settings)
    agent.auto_graduate = True
    agent.save(update_fields=["auto_graduate"])
    with pytest.raises(PermissionRefused):
        services.agent_graduate(agent, automatic=True, reason="r", confirm=True)
    for _ in range(3):
        finish(add_iteration(agent))
    append_bars(agent.instrument, 10, seed=10)
    paper_tick()
    agent.refresh_from_db()
    assert agent.status == AgentStatus.PAPER_TRADING
    # The paper record made it eligible for live: announced, not acted on.
    assert ready_alerts(agent).filter(fingerprint__startswith="graduation:paper_trading:bar:").count() == 1


@pytest.mark.parametrize("confirm, reason, fields", [(False, "ok", {"confirm"}), (True, "  ", {"reason"}),
                                                     (None, "", {"confirm", "reason"})])
def test_live_needs_confirm_and_a_reason(settings, confirm, reason, fields):
    agent = live_ready(settings)
    with pytest.raises(ValidationFailed) as exc:
        services.agent_graduate(agent, actor=approver(), reason=reason, confirm=confirm)
    assert set(exc.value.errors) == fields


def test_live_needs_the_paper_record(settings):
    agent = live_ready(settings)
    settings.LAB_PAPER_MIN_BARS = 1000
    with pytest.raises(Conflict) as exc:
        services.agent_graduate(agent, actor=approver(), reason="r", confirm=True)
    assert "paper_bars: 40 vs required 1000" in exc.value.errors["eligibility"]


def test_a_person_with_the_permission_moves_a_paper_agent_to_live(settings):
    agent = live_ready(settings)
    paper = PaperAccount.objects.get(agent=agent, closed_at__isnull=True)
    user = approver()
    event = services.agent_graduate(agent, actor=user, reason="40 good paper bars", confirm=True)
    agent.refresh_from_db()
    assert agent.status == AgentStatus.LIVE_TRADING
    assert event.actor == user and not event.automatic and event.metrics_snapshot["window"]["kind"] == "paper"
    paper.refresh_from_db()
    assert paper.closed_at is not None and "live" in paper.close_reason
    live = PaperAccount.objects.get(agent=agent, closed_at__isnull=True)
    assert live.live and live.equity == agent.initial_capital
    append_bars(agent.instrument, 15, seed=11)
    assert paper_tick()["bars"] == 15  # the same engine, on the simulated broker
    with pytest.raises(Conflict):
        services.agent_graduate(agent, actor=user, reason="again", confirm=True)


# --- demotion --------------------------------------------------------------------------------------------
def test_a_person_demotes_with_a_reason_and_the_account_closes():
    agent = paper_agent()
    with pytest.raises(ValidationFailed) as exc:
        services.agent_demote(agent, actor=agent.owner, reason="")
    assert list(exc.value.errors) == ["reason"]
    event = services.agent_demote(agent, actor=agent.owner, reason="market changed")
    agent.refresh_from_db()
    assert agent.status == AgentStatus.LEARNING
    assert (event.kind, event.from_status, event.to_status, event.automatic) == (
        EventKind.DEMOTE, AgentStatus.PAPER_TRADING, AgentStatus.LEARNING, False)
    assert event.metrics_snapshot["trigger"] == "manual" and "paper_metrics" in event.metrics_snapshot
    assert not PaperAccount.objects.filter(agent=agent, closed_at__isnull=True).exists()
    assert ActivityLog.objects.filter(agent=agent, event="demoted").exists()
    with pytest.raises(Conflict):
        services.agent_demote(agent, actor=agent.owner, reason="again")


def test_automatic_demotion_when_the_paper_drawdown_passes_max_drawdown():
    agent = paper_agent({"max_drawdown": 0.1}, params={"fast": 5, "slow": 20})
    append_bars(agent.instrument, 40, seed=1, drift=0.01, vol=0.002)  # a steady rise: long
    paper_tick()
    account = PaperAccount.objects.get(agent=agent, closed_at__isnull=True)
    assert account.position == 1.0 and account.max_drawdown < 0.1
    append_bars(agent.instrument, 6, seed=2, drift=-0.04, vol=0.002)  # a crash while long
    summary = paper_tick()
    assert summary["demoted"] == 1
    agent.refresh_from_db()
    assert agent.status == AgentStatus.LEARNING
    event = GraduationEvent.objects.get(agent=agent, kind=EventKind.DEMOTE)
    assert event.automatic and event.metrics_snapshot["trigger"] == "drawdown"
    assert "passed max_drawdown 10.00%" in event.reason
    account.refresh_from_db()
    assert account.closed_at is not None and account.max_drawdown > 0.1


@pytest.fixture(params=["alerts first", "graduation first"])
def receiver_order(request):
    """iteration_finished's receivers in INSTALLED_APPS order, and reversed: demotion must not care."""
    if request.param == "alerts first":
        yield request.param
        return
    from alerts import receivers as alert_receivers
    from graduation import receivers as graduation_receivers

    uids = {"alerts.monitor.iteration_finished": alert_receivers.on_iteration_finished,
            "graduation.iteration_finished": graduation_receivers.on_iteration_finished}
    for uid in uids:
        signals.iteration_finished.disconnect(dispatch_uid=uid)
    for uid in reversed(uids):
        signals.iteration_finished.connect(uids[uid], dispatch_uid=uid)
    yield request.param
    for uid in uids:
        signals.iteration_finished.disconnect(dispatch_uid=uid)
    for uid, receiver in uids.items():
        signals.iteration_finished.connect(receiver, dispatch_uid=uid)


def test_automatic_demotion_on_a_critical_degradation_alert_from_the_monitor(
    settings, receiver_order, django_capture_on_commit_callbacks
):
    settings.LAB_ALERT_WIN_RATE_DROP = 0.1
    many = {"num_trades": 100.0}  # a drop on 100 trades each side is evidence
    agent = eligible_agent(iterations=0)
    for _ in range(3):
        add_iteration(agent, many)
    services.agent_graduate(agent, actor=agent.owner, reason="ready")
    agent.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        finish(add_iteration(agent, many))  # the monitor sees no drop yet
    agent.refresh_from_db()
    assert agent.status == AgentStatus.PAPER_TRADING
    with django_capture_on_commit_callbacks(execute=True):
        finish(add_iteration(agent, {**many, "win_rate": 0.2}))  # win rate 0.6 -> 0.2: CRITICAL while trading
    alert = AgentAlert.objects.get(agent=agent, alert_type=AlertType.PERFORMANCE_DEGRADATION)
    assert alert.severity == Severity.CRITICAL
    agent.refresh_from_db()
    assert agent.status == AgentStatus.LEARNING
    event = GraduationEvent.objects.get(agent=agent, kind=EventKind.DEMOTE)
    assert event.automatic and event.metrics_snapshot["trigger"] == "performance_degradation"
    assert event.metrics_snapshot["alert"] == alert.pk


def test_a_drop_on_a_few_trades_neither_alerts_nor_demotes(settings):
    settings.LAB_ALERT_WIN_RATE_DROP = 0.1
    agent = paper_agent()  # 12 trades per sealed window: below the monitor's minimum
    finish(add_iteration(agent))
    finish(add_iteration(agent, {"win_rate": 0.2}))  # 0.6 -> 0.2, on 12 trades
    assert not AgentAlert.objects.filter(agent=agent, alert_type=AlertType.PERFORMANCE_DEGRADATION).exists()
    agent.refresh_from_db()
    assert agent.status == AgentStatus.PAPER_TRADING
    assert not GraduationEvent.objects.filter(agent=agent, kind=EventKind.DEMOTE).exists()


def test_a_degradation_alert_from_before_the_graduation_or_a_warning_does_not_demote():
    agent = eligible_agent()
    alert_raise(agent, alert_type=AlertType.PERFORMANCE_DEGRADATION, severity=Severity.CRITICAL, message="old news",
                fingerprint="old")
    services.agent_graduate(agent, actor=agent.owner)
    agent.refresh_from_db()
    alert_raise(agent, alert_type=AlertType.PERFORMANCE_DEGRADATION, severity=Severity.WARNING, message="meh",
                fingerprint="w")
    finish(add_iteration(agent))
    paper_tick()
    agent.refresh_from_db()
    assert agent.status == AgentStatus.PAPER_TRADING
    # An alert the iteration path missed is still acted on by the next paper tick.
    alert_raise(agent, alert_type=AlertType.PERFORMANCE_DEGRADATION, severity=Severity.CRITICAL, message="now",
                fingerprint="n")
    assert paper_tick()["demoted"] == 1


def test_a_critical_degradation_alert_demotes_its_trading_agent_once_committed(django_capture_on_commit_callbacks):
    agent = eligible_agent()
    services.agent_graduate(agent, actor=agent.owner)
    agent.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        alert_raise(agent, alert_type=AlertType.PERFORMANCE_DEGRADATION, severity=Severity.WARNING, message="a dip",
                    fingerprint="dd")
        alert_raise(agent, alert_type=AlertType.ERROR, severity=Severity.CRITICAL, message="not a degradation",
                    fingerprint="e")
    agent.refresh_from_db()
    assert agent.status == AgentStatus.PAPER_TRADING
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        alert_raise(agent, alert_type=AlertType.PERFORMANCE_DEGRADATION, severity=Severity.CRITICAL, message="worse",
                    fingerprint="dd")
    agent.refresh_from_db()
    assert agent.status == AgentStatus.PAPER_TRADING  # nothing acts on an alert before its commit
    for callback in callbacks:
        callback()
    agent.refresh_from_db()
    assert agent.status == AgentStatus.LEARNING  # the repeat escalated WARNING -> CRITICAL
    event = GraduationEvent.objects.get(agent=agent, kind=EventKind.DEMOTE)
    assert event.automatic and event.metrics_snapshot["trigger"] == "performance_degradation"


# --- re-pins -------------------------------------------------------------------------------------------
def _apply_refinement(agent, params, *, automatic=False, capture=None):
    iteration = add_iteration(agent)
    refinement = Refinement.objects.create(iteration=iteration, agent=agent, proposed_params=params, source="optuna",
                                           score=2.0)
    decisions.refinement_approve(refinement, actor=agent.owner)
    with capture(execute=True):
        return decisions.refinements_apply(agent, actor=agent.owner, automatic=automatic, refinement=refinement)


def test_a_new_version_while_trading_becomes_the_challenger_not_a_repin(django_capture_on_commit_callbacks):
    # Since champion/challenger (graduation.challenger) a version applied while trading no longer
    # re-pins at once: it trades in a shadow paper account until it wins the paired test.
    agent = paper_agent(params={"fast": 3, "slow": 8})
    champion = PaperAccount.objects.get(agent=agent, closed_at__isnull=True)
    version = _apply_refinement(agent, {"fast": 4, "slow": 9}, capture=django_capture_on_commit_callbacks)
    assert not GraduationEvent.objects.filter(agent=agent, kind=EventKind.REPIN).exists()
    champion.refresh_from_db()
    assert champion.version.number == 1 and champion.role == AccountRole.CHAMPION
    shadow = PaperAccount.objects.get(agent=agent, role=AccountRole.CHALLENGER, closed_at__isnull=True)
    assert shadow.version == version and not shadow.live
    assert shadow.opened_bar_timestamp == champion.last_bar_timestamp
    assert ActivityLog.objects.filter(agent=agent, event="challenger_opened").exists()
    # Idempotent: the tick finds nothing more to open.
    paper_tick()
    assert PaperAccount.objects.filter(agent=agent, role=AccountRole.CHALLENGER).count() == 1
    assert not GraduationEvent.objects.filter(agent=agent, kind=EventKind.REPIN).exists()


def test_a_challenger_the_receiver_missed_is_opened_by_the_paper_tick():
    agent = paper_agent(params={"fast": 3, "slow": 8})
    iteration = add_iteration(agent)
    refinement = Refinement.objects.create(iteration=iteration, agent=agent, proposed_params={"fast": 4, "slow": 9},
                                           source="optuna", score=2.0)
    decisions.refinement_approve(refinement, actor=agent.owner)
    version = decisions.refinements_apply(agent, actor=agent.owner, refinement=refinement)  # on_commit never runs
    paper_tick()
    shadow = PaperAccount.objects.get(agent=agent, role=AccountRole.CHALLENGER, closed_at__isnull=True)
    assert shadow.version == version
    assert not GraduationEvent.objects.filter(agent=agent, kind=EventKind.REPIN).exists()


def test_auto_apply_in_paper_is_the_owners_switch_and_never_for_live():
    agent = paper_agent()
    assert not approval.paper_trading_auto_apply_allowed(agent)
    agent.auto_apply_in_paper = True
    assert approval.paper_trading_auto_apply_allowed(agent)
    assert approval.automatic_application_refused(agent) is None
    agent.status = AgentStatus.LIVE_TRADING
    assert not approval.paper_trading_auto_apply_allowed(agent)
    assert approval.automatic_application_refused(agent) is not None
    assert make_agent().auto_apply_in_paper is False


def episode_story(monkeypatch, *, shortcut):
    """Iterations of one agent through min_iterations being reached, raised above the count and
    lowered again; returns its episodes, GRADUATION_READY alerts and how often the full check ran."""
    full_checks = []
    real = reactions.eligibility
    monkeypatch.setattr(reactions, "eligibility", lambda agent: full_checks.append(1) or real(agent))
    if not shortcut:
        monkeypatch.setattr(reactions, "could_be_eligible", lambda agent: True)
    agent = eligible_agent(iterations=0)
    steps = [None, None, None, {"min_iterations": 10}, {"min_iterations": 10}, {"min_iterations": 3}, None]
    for criteria in steps:
        if criteria:
            agent.graduation_criteria = criteria
            agent.save(update_fields=["graduation_criteria"])
        finish(add_iteration(agent))
    episodes = list(EligibilityEpisode.objects.filter(agent=agent).order_by("id")
                    .values_list("started_key", "ended_at"))
    fingerprints = list(ready_alerts(agent).order_by("id").values_list("fingerprint", flat=True))
    monkeypatch.undo()
    return [(key, ended is None) for key, ended in episodes], fingerprints, len(full_checks)


def test_the_min_iterations_shortcut_gives_the_episodes_of_the_full_check(monkeypatch):
    with_shortcut = episode_story(monkeypatch, shortcut=True)
    full = episode_story(monkeypatch, shortcut=False)
    assert with_shortcut[:2] == full[:2] == (
        [("iteration:3", False), ("iteration:6", True)],  # #4 and #5 are under the raised minimum
        ["graduation:learning:iteration:3", "graduation:learning:iteration:6"])
    assert (with_shortcut[2], full[2]) == (3, 7)  # #1, #2, #4, #5 only counted their iterations


@pytest.mark.parametrize("succeeded, minimum", [(0, 1), (2, 3), (9, 10)])
def test_an_agent_the_shortcut_skips_is_never_eligible(succeeded, minimum):
    agent = eligible_agent({"min_iterations": minimum}, iterations=succeeded)
    assert not reactions.could_be_eligible(agent)
    result = eligibility(agent)
    assert not result["eligible"] and "min_iterations" in result["failed"]


def test_the_shortcut_lets_an_agent_at_its_minimum_through():
    agent = eligible_agent({"min_iterations": 3}, iterations=3)
    assert reactions.could_be_eligible(agent) and eligibility(agent)["eligible"]
