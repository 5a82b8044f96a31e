"""`manage.py lab ...`: the operator's day from the shell, with tables, exit codes and the services."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from agents.models import ActivityLog
from alerts.models import AgentAlert
from graduation import services as graduation_services
from graduation.eligibility import eligibility
from tests.console.helpers import eligible_agent, open_alert, staff_user
from tests.factories import UserFactory, make_agent
from tests.graduation.helpers import eligible_agent as evidenced_agent

pytestmark = pytest.mark.django_db


def lab(*args):
    out = io.StringIO()
    call_command("lab", *args, stdout=out)
    return out.getvalue()


def refused(*args):
    with pytest.raises(CommandError) as excinfo:
        lab(*args)
    return excinfo.value


@pytest.fixture
def alice():
    return UserFactory(username="alice")


def test_agents_lists_status_version_score_and_autonomy(alice, instrument):
    agent = eligible_agent(alice, instrument, name="Trend")
    make_agent(owner=UserFactory(username="bob"), instrument=instrument, name="Other")
    lines = lab("agents").splitlines()
    assert lines[0].split() == ["id", "name", "owner", "instrument", "template", "status", "version", "score",
                                "auto-learn", "continuous", "auto-approve"]
    row = next(line for line in lines if "Trend" in line).split()
    assert row[:7] == [str(agent.pk)[:8], "Trend", "alice", "CONSOLE", "sma_crossover", "learning", "v1"]
    assert row[7] == "1.000" and row[8:] == ["off", "off", "off"]
    assert "2 agent(s)" in lines[-1]
    mine = lab("agents", "--as", "alice")
    assert "Trend" in mine and "Other" not in mine


def test_agent_shows_eligibility_open_alerts_and_the_last_iterations(alice, instrument):
    agent = eligible_agent(alice, instrument, name="Trend")
    alert = open_alert(agent)
    page = lab("agent", "Trend")
    result = eligibility(agent)  # whatever the gate decides, the page shows it criterion by criterion
    assert f"Eligibility: {result['verdict'].replace('_', ' ')} for paper_trading" in page
    assert result["criteria"] and all(row["criterion"] in page for row in result["criteria"])
    assert "Open alerts (1)" in page and str(alert.pk) in page and "Validation Sharpe fell" in page
    assert "Last iterations" in page and page.count("succeeded") == 3


def test_writes_need_a_user_and_others_agents_are_refused(alice, instrument):
    eligible_agent(alice, instrument, name="Trend")
    assert "--as: say who is acting" in str(refused("auto-approve", "Trend", "on"))
    UserFactory(username="bob")
    error = refused("auto-approve", "Trend", "on", "--as", "bob")
    assert error.returncode == 4 and "bob may act only on their own agents" in str(error)
    assert "no agent with id or name 'Nope'" in str(refused("agent", "Nope"))


def test_auto_learn_with_a_cron_then_off(alice, instrument):
    agent = eligible_agent(alice, instrument, name="Trend")
    error = refused("auto-learn", "Trend", "on", "--cron", "0 25 * * *", "--as", "alice")
    assert error.returncode == 1 and "cron: field 2 (hour) '25' is out of range 0-23" in str(error)
    agent.refresh_from_db()
    assert not agent.auto_learn_enabled
    out = lab("auto-learn", "Trend", "on", "--cron", "0 6 * * 1-5", "--timezone", "Europe/Paris", "--as", "alice")
    assert "Trend: auto-learn on" in out and "(Europe/Paris)" in out
    agent.refresh_from_db()
    assert agent.auto_learn_enabled and agent.learning_schedule == "0 6 * * 1-5"
    assert "auto-learn off" in lab("auto-learn", "Trend", "off", "--as", "alice")
    assert ActivityLog.objects.filter(agent=agent, event="auto_learn_enabled", actor__username="alice").exists()


def test_continuous_learning_start_and_stop(alice, instrument):
    agent = eligible_agent(alice, instrument, name="Trend")
    assert "continuous learning" in lab("continuous", "Trend", "start", "--as", "alice")
    agent.refresh_from_db()
    assert agent.continuous_learning_enabled
    assert "continuous learning stopped" in lab("continuous", "Trend", "stop", "--reason", "enough", "--as", "alice")
    agent.refresh_from_db()
    assert not agent.continuous_learning_enabled and agent.continuous_stop_reason == "enough"


def test_auto_approval_and_thresholds(alice, instrument):
    agent = eligible_agent(alice, instrument, name="Trend")
    assert "auto-approval on" in lab("auto-approve", "Trend", "on", "--as", "alice")
    error = refused("thresholds", "Trend", "min_sharpe_ratio=abc", "min_vibes=1", "--as", "alice")
    assert error.returncode == 1 and "min_sharpe_ratio:" in str(error) and "min_vibes: unknown" in str(error)
    out = lab("thresholds", "Trend", "min_sharpe_ratio=0.8", "max_drawdown=0.3", "--as", "alice")
    assert "min_sharpe_ratio=0.8" in out and "max_drawdown=0.3" in out
    agent.refresh_from_db()
    assert agent.auto_approve_enabled and agent.approval_thresholds["min_sharpe_ratio"] == 0.8
    assert "auto-approval off" in lab("auto-approve", "Trend", "off", "--as", "alice")


def test_acknowledging_alerts_by_id_or_all_of_an_agent(alice, instrument):
    agent = eligible_agent(alice, instrument, name="Trend")
    first = open_alert(agent, message="first problem")
    open_alert(agent, message="second problem")
    assert "No open alerts" not in lab("alerts", "Trend")
    assert f"alert {first.pk} acknowledged" in lab("ack", str(first.pk), "--as", "alice")
    assert "no alert 999999" in str(refused("ack", "999999", "--as", "alice"))
    assert "1 alert(s) acknowledged" in lab("ack", "--agent", "Trend", "--all", "--as", "alice")
    assert not AgentAlert.objects.filter(acknowledged=False).exists()
    assert "No open alerts." in lab("alerts")


def test_graduate_and_demote_with_permission_confirm_reason_and_exit_codes(instrument, monkeypatch):
    operator = staff_user("operator")
    make_agent(owner=operator, instrument=instrument, name="Fresh")
    # The gate's verdict (graduation.eligibility, tested there) comes through with exit code 3.
    error = refused("graduate", "Fresh", "--as", "operator")
    assert error.returncode == 3 and "eligibility: not eligible for paper_trading" in str(error)
    agent = evidenced_agent(owner=operator, instrument=instrument, name="Trend")
    assert "Trend: learning -> paper_trading" in lab("graduate", "Trend", "--as", "operator")
    error = refused("graduate", "Trend", "--as", "operator", "--confirm", "--reason", "ready")
    assert error.returncode == 4 and "graduation.approve_live_trading" in str(error)

    # From paper on, the command's part is the permission, the confirmation, the reason and the exit
    # codes; a fresh paper account has no record, so the gate is made to pass.
    real = graduation_services.eligibility
    monkeypatch.setattr(graduation_services, "eligibility", lambda agent, **kw: {
        **real(agent, **kw), "eligible": True, "verdict": "eligible", "failed": []})
    boss = staff_user("boss", live=True)
    agent.owner = boss
    agent.save(update_fields=["owner"])
    error = refused("graduate", "Trend", "--as", "boss")
    assert error.returncode == 1 and "confirm: must be true" in str(error) and "reason: required" in str(error)
    agent.refresh_from_db()
    assert agent.status == "paper_trading"
    assert "Trend: paper_trading -> live_trading (ready)" in lab("graduate", "Trend", "--as", "boss", "--confirm",
                                                                 "--reason", "ready")
    error = refused("demote", "Trend", "--as", "boss")
    assert error.returncode == 1 and "reason: required" in str(error)
    assert "Trend: live_trading -> learning (drawdown)" in lab("demote", "Trend", "--reason", "drawdown",
                                                               "--as", "boss")
    assert refused("demote", "Trend", "--reason", "again", "--as", "boss").returncode == 3
