"""The agent page's control views, through Django's test client: each calls its service and
comes back with the success or the service's own error message; CSRF, scoping and permissions."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from agents.models import (
    ContinuousState,
    ExamPurpose,
    ExamReading,
    IterationStatus,
    Refinement,
    RefinementStatus,
    TradingAgent,
)
from agents.services import decisions, dispatch, learning, manual_approval
from agents.services.approval_gate import SEALED_CRITERION, describe_rows
from alerts.models import AgentAlert
from graduation.models import GraduationEvent
from tests.console.helpers import add_iteration, eligible_agent, open_alert, staff_user
from tests.factories import make_agent

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent(operator, instrument):
    return make_agent(owner=operator, instrument=instrument, name="Controlled")


@pytest.fixture
def client_for(client):
    def login(user):
        client.force_login(user)
        return client

    return login


def control(agent, name):
    return reverse("admin:agents_tradingagent_control", args=[agent.pk, name])


def page(agent):
    return reverse("admin:agents_tradingagent_change", args=[agent.pk])


def messages_of(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


def post(client, url, data=None):
    response = client.post(url, data or {}, follow=True)
    assert response.status_code == 200, response.content[:500]
    return messages_of(response), response


def test_run_inline_runs_the_iteration_and_reports_its_score(client_for, operator, agent):
    said, response = post(client_for(operator), control(agent, "run-inline"))
    iteration = agent.iterations.get()
    assert iteration.status == IterationStatus.SUCCEEDED
    assert any(m.startswith("Iteration #1 succeeded: sharpe") for m in said), said
    assert response.redirect_chain[-1][0].startswith(page(agent))
    assert b'data-iteration="1"' in response.content


def test_run_queued_hands_it_to_a_worker(client_for, operator, agent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        said, _ = post(client_for(operator), control(agent, "run-queued"))
    assert said == ["Iteration #1 queued for a worker."]
    assert agent.iterations.get().status == IterationStatus.QUEUED
    said, _ = post(client_for(operator), control(agent, "run-queued"))
    assert said == ["Iteration #1 is already queued; nothing new was queued."]


def test_bad_cron_shows_the_api_message_keeps_the_input_and_changes_nothing(client_for, operator, agent):
    client = client_for(operator)
    said, response = post(client, control(agent, "schedule"), {"cron": "0 25 * * *", "timezone": "UTC"})
    assert said == ["cron: field 2 (hour) '25' is out of range 0-23"]
    html = response.content.decode()
    assert 'value="0 25 * * *"' in html and "out of range 0-23" in html
    agent.refresh_from_db()
    assert agent.learning_schedule == "" and not agent.auto_learn_enabled
    # The typed value is shown once, then the stored one again.
    assert 'value="0 25 * * *"' not in client.get(page(agent)).content.decode()


def test_good_cron_with_enable_shows_the_next_run(client_for, operator, agent):
    said, response = post(client_for(operator), control(agent, "schedule"),
                          {"cron": "0 */6 * * *", "timezone": "UTC", "_enable": "1"})
    agent.refresh_from_db()
    assert agent.auto_learn_enabled and agent.next_scheduled_iteration is not None
    assert said[0].startswith("Schedule set: Every 6 hours (UTC); next run 20"), said
    assert agent.next_scheduled_iteration.strftime("%Y-%m-%d %H:%M") in response.content.decode()


def test_schedule_without_enable_keeps_auto_learn_off(client_for, operator, agent):
    said, _ = post(client_for(operator), control(agent, "schedule"), {"cron": "@daily", "timezone": "UTC"})
    agent.refresh_from_db()
    assert agent.learning_schedule and not agent.auto_learn_enabled
    assert said[0].endswith("Auto-learn is off: turn it on to run it.")


def test_auto_learn_switch_and_its_error_without_a_schedule(client_for, operator, agent):
    client = client_for(operator)
    said, _ = post(client, control(agent, "auto-learn-enable"))
    assert said == ["learning_schedule: set a schedule first (a five-field cron)"]
    post(client, control(agent, "schedule"), {"cron": "*/30 * * * *", "timezone": "Europe/London"})
    said, _ = post(client, control(agent, "auto-learn-enable"))
    assert said[0].startswith("Auto-learn on: ")
    said, _ = post(client, control(agent, "auto-learn-disable"))
    agent.refresh_from_db()
    assert not agent.auto_learn_enabled and said == ["Auto-learn off (the schedule is kept)."]


def test_thresholds_form_validates_through_the_service(client_for, operator, agent):
    client = client_for(operator)
    bad = {"min_win_rate": "1.5", "min_sharpe_ratio": "abc", "min_signals": "3", "min_total_return": "0",
           "require_improvement": "on", "max_drawdown": "", "min_dsr": "0.9", "max_improvement_p": "0",
           "max_test_shortfall": "0.3", "min_fold_pass": "21"}
    said, response = post(client, control(agent, "thresholds"), bad)
    assert sorted(said) == [
        "max_improvement_p: must be a number greater than 0 and at most 1",
        "min_fold_pass: must be an integer between 1 and 20",
        "min_sharpe_ratio: must be a number between -10 and 10",
        "min_win_rate: must be a number between 0 and 1",
    ]
    html = response.content.decode()
    assert 'value="abc"' in html and 'value="21"' in html
    for name in ("min_dsr", "max_improvement_p", "max_test_shortfall", "min_fold_pass"):  # the form has them all
        assert f'name="{name}"' in html, name
    agent.refresh_from_db()
    assert agent.approval_thresholds == {}
    good = {**bad, "min_win_rate": "0.5", "min_sharpe_ratio": "0.2", "max_drawdown": "0.3",
            "max_improvement_p": "0.1", "min_fold_pass": "4"}
    said, _ = post(client, control(agent, "thresholds"), good)
    agent.refresh_from_db()
    assert said == ["Approval thresholds saved."]
    assert agent.approval_thresholds["min_win_rate"] == 0.5 and agent.approval_thresholds["max_drawdown"] == 0.3
    assert agent.approval_thresholds["min_signals"] == 3 and agent.approval_thresholds["require_improvement"] is True
    assert agent.approval_thresholds["min_dsr"] == 0.9 and agent.approval_thresholds["max_improvement_p"] == 0.1
    assert agent.approval_thresholds["min_fold_pass"] == 4 and agent.approval_thresholds["max_test_shortfall"] == 0.3


def test_auto_approve_and_continuous_switches(client_for, operator, agent):
    client = client_for(operator)
    said, _ = post(client, control(agent, "auto-approve-enable"))
    assert said[0].startswith("Auto-approval on")
    said, _ = post(client, control(agent, "continuous-start"))
    agent.refresh_from_db()
    assert agent.continuous_learning_enabled and said[0].startswith("Continuous learning on")
    said, _ = post(client, control(agent, "continuous-stop"), {"reason": "enough for today"})
    agent.refresh_from_db()
    assert agent.continuous_state == ContinuousState.STOPPED and agent.continuous_stop_reason == "enough for today"
    said, _ = post(client, control(agent, "continuous-stop"), {"reason": "x" * 301})
    assert said == ["reason: must be at most 300 characters"]
    said, _ = post(client, control(agent, "auto-approve-disable"))
    assert said == ["Auto-approval off."]


def test_refinement_approve_apply_reject_and_their_refusals(client_for, operator, agent):
    client = client_for(operator)
    learning.iteration_run_now(agent, trigger="manual")
    first, second = Refinement.objects.filter(agent=agent).order_by("id")[:2]
    url = "admin:agents_tradingagent_refinement"
    said, _ = post(client, reverse(url, args=[agent.pk, first.pk, "approve"]))
    # A person may approve what the gate refuses; the approval reads the sealed window for it and
    # says which rules it fails.
    first.refresh_from_db()
    assert first.status == RefinementStatus.APPROVED and first.decided_by == operator
    assert first.test_score is not None and first.validation_metrics
    rows = {r["criterion"]: r for r in first.criteria_results}
    assert rows[SEALED_CRITERION]["evidence"] == "test"
    assert {"min_dsr", "max_improvement_p", "min_win_rate", "min_signals"} <= set(rows)
    failed = [r for r in first.criteria_results if not r["passed"]]
    assert failed, "a candidate found on a random walk fails the gate"
    assert said == [f"Refinement {first.pk} approved; apply it to make it the current version. It fails "
                    f"{len(failed)} rule(s) of the approval gate: {describe_rows(failed)}."]
    assert "approved by a person; it fails " in first.decision_reason
    assert all(r["criterion"] in first.decision_reason for r in failed)
    reading = ExamReading.objects.get(agent=agent, purpose=ExamPurpose.MANUAL_APPROVAL)
    assert reading.refinement_id == first.pk and reading.score == first.test_score
    said, _ = post(client, reverse(url, args=[agent.pk, first.pk, "approve"]))
    assert said == ["status: only a pending refinement can be approved (this one is approved)"]
    said, _ = post(client, reverse(url, args=[agent.pk, first.pk, "apply"]))
    agent.refresh_from_db()
    assert said == [f"Refinement {first.pk} applied: v2 is now the current version."]
    assert agent.current_version.number == 2
    said, _ = post(client, reverse(url, args=[agent.pk, second.pk, "reject"]), {"reason": "too wide"})
    second.refresh_from_db()
    assert second.status == RefinementStatus.REJECTED and second.decision_reason == "too wide"
    said, _ = post(client, control(agent, "apply-best"))
    assert said == ["refinements: there is no approved refinement to apply"]
    assert client.post(reverse(url, args=[agent.pk, second.pk, "merge"])).status_code == 404


def test_the_page_shows_a_refinements_evidence(client_for, operator, agent):
    learning.iteration_run_now(agent, trigger="manual")
    html = client_for(operator).get(page(agent)).content.decode()
    refinement = Refinement.objects.filter(agent=agent).first()
    assert f'id="refinement-{refinement.pk}"' in html
    block = html.split(f'id="refinement-{refinement.pk}"', 1)[1].split("</details>", 1)[0]
    # Selection figures are labelled in-sample; the sealed test score is not read until a gate reads it.
    for label in ("selection score (in-sample)", "sealed test score (out of sample)", "deflated Sharpe ratio",
                  "p (beats the current version)", "Sharpe (in-sample)", "trades (in-sample)"):
        assert label in block, label
    assert "not read" in block
    assert "As judged by the approval gate while the iteration ran" in block
    for criterion in ("min_dsr", "max_improvement_p", "min_win_rate", "min_sharpe_ratio", "min_signals"):
        assert f"<td>{criterion}</td>" in block, criterion
    assert re.search(r"\d/5 folds \(needs 3\)", block)
    assert "<svg" in html and "buy and hold" in html

    # Approved by a person: the sealed test score appears beside the current version's.
    manual_approval.refinement_approve_with_evidence(refinement, actor=operator)
    refinement.refresh_from_db()
    block = client_for(operator).get(page(agent)).content.decode().split(
        f'id="refinement-{refinement.pk}"', 1)[1].split("</details>", 1)[0]
    assert f"sealed test {refinement.test_score:.4f}" in block
    assert f"<td>{SEALED_CRITERION}</td>" in block


def test_rollback(client_for, operator, agent):
    learning.iteration_run_now(agent, trigger="manual")
    refinement = Refinement.objects.filter(agent=agent).first()
    decisions.refinement_approve(refinement, actor=operator)
    decisions.refinements_apply(agent, actor=operator)
    v1 = agent.versions.get(number=1)
    url = reverse("admin:agents_tradingagent_rollback", args=[agent.pk, v1.pk])
    said, _ = post(client_for(operator), url)
    agent.refresh_from_db()
    assert said == ["Rolled back to v1's parameters as v3."] and agent.current_version.number == 3
    current = agent.current_version
    said, _ = post(client_for(operator), reverse("admin:agents_tradingagent_rollback", args=[agent.pk, current.pk]))
    assert said == ["version: v3 is already the current version"]


def test_acknowledge_one_and_all(client_for, operator, agent):
    client = client_for(operator)
    one, two = open_alert(agent, message="first problem"), open_alert(agent, message="second problem",
                                                                           severity="CRITICAL")
    url = reverse("admin:agents_tradingagent_acknowledge", args=[agent.pk, one.pk])
    said, _ = post(client, url)
    assert said == [f"Alert {one.pk} acknowledged."]
    said, _ = post(client, url)
    assert said == [f"Alert {one.pk} was already acknowledged."]
    said, _ = post(client, control(agent, "acknowledge-all"))
    assert said == ["1 alert acknowledged."]
    two.refresh_from_db()
    assert two.acknowledged and two.acknowledged_by == operator


def test_graduate_and_demote(client_for, operator, instrument):
    agent = eligible_agent(operator, instrument)
    client = client_for(operator)
    said, _ = post(client, control(agent, "demote"), {"reason": "no"})
    assert said == ["status: only a paper or live trading agent can be demoted (this one is learning)"]
    said, _ = post(client, control(agent, "graduate"), {"reason": ""})
    agent.refresh_from_db()
    assert agent.status == "paper_trading" and said[0].startswith("Graduated to paper trading")
    said, _ = post(client, control(agent, "demote"), {"reason": ""})
    assert said == ["reason: required: say why the agent goes back to learning"]
    said, _ = post(client, control(agent, "demote"), {"reason": "drawdown too deep"})
    agent.refresh_from_db()
    assert agent.status == "learning" and said == ["Demoted to learning: drawdown too deep"]


def test_the_graduation_panel_shows_the_evidence_of_the_decision(client_for, operator, instrument):
    agent = eligible_agent(operator, instrument)
    client = client_for(operator)
    html = client.get(page(agent)).content.decode()
    table = html.split('id="eligibility-table"', 1)[1].split("</table>", 1)[0]
    for criterion in ("min_win_rate", "min_sharpe_ratio", "min_signals", "min_dsr", "max_pbo", "min_track_record"):
        assert f"<td>{criterion}" in table, criterion
    assert "5/5 folds (needs 3); sealed test 1.20" in table
    assert "Evidence: iteration #3 on v1; 12 parameter sets tried" in html
    assert 'id="eligibility-lacks"' not in html

    add_iteration(agent, dsr=0.3, pbo=0.9)  # the latest evaluation is the evidence
    html = client.get(page(agent)).content.decode()
    assert '<span class="lab-badge not_eligible" id="eligibility-verdict">not eligible</span>' in html
    assert "Evidence: iteration #4 on v1" in html
    assert '<p class="small" id="eligibility-lacks">Lacks: min_dsr, max_pbo.</p>' in html
    said, _ = post(client, control(agent, "graduate"))
    assert said == ["eligibility: not eligible for paper_trading: min_dsr: 0.3 vs required 0.95; "
                    "max_pbo: 0.9 vs required 0.5"]


def test_graduate_refused_when_not_eligible_names_the_failed_criteria(client_for, operator, agent):
    said, _ = post(client_for(operator), control(agent, "graduate"))
    assert len(said) == 1 and said[0].startswith("eligibility: not eligible for paper_trading: min_iterations: 0")


# --- going live ----------------------------------------------------------------------------------
def go_live(agent):
    return reverse("admin:agents_tradingagent_go_live", args=[agent.pk])


@pytest.fixture
def paper_agent(operator, instrument):
    from graduation.services import agent_graduate

    agent = eligible_agent(operator, instrument)
    agent_graduate(agent, actor=operator, reason="good record")
    agent.refresh_from_db()
    return agent


def test_go_live_without_the_permission_is_refused(client_for, operator, paper_agent):
    client = client_for(operator)
    response = client.get(go_live(paper_agent))
    assert response.status_code == 403
    html = response.content.decode()
    assert "moving an agent to live trading needs the graduation.approve_live_trading permission" in html
    assert 'id="go-live-form"' not in html
    response = client.post(go_live(paper_agent), {"reason": "trust me", "confirm": "on"})
    assert response.status_code == 403
    paper_agent.refresh_from_db()
    assert paper_agent.status == "paper_trading"


def test_go_live_needs_reason_and_confirmation_then_the_record(client_for, instrument):
    from graduation.services import agent_graduate

    boss = staff_user("boss", live=True)
    agent = eligible_agent(boss, instrument)
    agent_graduate(agent, actor=boss, reason="good record")
    client = client_for(boss)
    response = client.get(go_live(agent))
    assert response.status_code == 200 and 'id="go-live-form"' in response.content.decode()
    response = client.post(go_live(agent), {"reason": ""})
    html = response.content.decode()
    assert response.status_code == 400
    assert "must be true: moving an agent to live trading needs an explicit confirmation" in html
    assert "required: say why this agent should trade live" in html
    # Confirmed with a reason, but the fresh paper account has no record yet: the service says so.
    response = client.post(go_live(agent), {"reason": "strong paper record", "confirm": "on"})
    assert response.status_code == 409 and "not eligible for live_trading: paper_bars: 0" in response.content.decode()
    agent.refresh_from_db()
    assert agent.status == "paper_trading"


def test_go_live_succeeds_with_permission_and_an_eligible_record(client_for, instrument, monkeypatch):
    from graduation import services
    from graduation.services import agent_graduate

    boss = staff_user("boss", live=True)
    agent = eligible_agent(boss, instrument)
    agent_graduate(agent, actor=boss, reason="good record")
    eligible = {"eligible": True, "verdict": "eligible", "criteria": [], "window": {}, "criteria_in_force": {},
                "failed": []}
    monkeypatch.setattr(services, "eligibility", lambda agent, now=None: eligible)
    response = client_for(boss).post(go_live(agent), {"reason": "strong paper record", "confirm": "on"}, follow=True)
    agent.refresh_from_db()
    assert agent.status == "live_trading"
    assert any("is live trading v1: strong paper record" in m for m in messages_of(response))
    assert GraduationEvent.objects.filter(agent=agent, to_status="live_trading", actor=boss).exists()


def test_go_live_of_a_learning_agent_goes_back_with_the_reason(client_for, operator, agent):
    response = client_for(operator).get(go_live(agent), follow=True)
    assert messages_of(response) == ["status: only a paper trading agent can go live (this one is learning)"]


# --- the rules every control keeps ---------------------------------------------------------------
CONTROLS = ["run-queued", "run-inline", "schedule", "auto-learn-enable", "auto-learn-disable", "auto-approve-enable",
            "auto-approve-disable", "thresholds", "continuous-start", "continuous-stop", "apply-best",
            "acknowledge-all", "graduate", "demote", "challenger-promote", "challenger-dismiss"]


@pytest.mark.parametrize("name", CONTROLS)
def test_another_owners_agent_is_a_404_and_nothing_changes(client_for, other_owner, agent, name):
    before = TradingAgent.objects.filter(pk=agent.pk).values().get()
    response = client_for(other_owner).post(control(agent, name), {"cron": "@daily", "reason": "x"})
    assert response.status_code == 404
    assert TradingAgent.objects.filter(pk=agent.pk).values().get() == before
    assert not agent.iterations.exists()


@pytest.mark.parametrize("name", ["run-inline", "continuous-start", "graduate"])
def test_view_only_staff_get_a_403(client, instrument, name):
    viewer = staff_user("viewer", view_only=True)
    agent = make_agent(owner=viewer, instrument=instrument)
    client.force_login(viewer)
    assert client.get(page(agent)).status_code == 200
    assert client.post(control(agent, name)).status_code == 403
    assert client.get(go_live(agent)).status_code == 403


def test_object_controls_are_scoped_to_the_agent(client_for, operator, other_owner, agent, instrument):
    other = make_agent(owner=other_owner, instrument=instrument)
    learning.iteration_run_now(other, trigger="manual")
    foreign = Refinement.objects.filter(agent=other).first()
    alert = open_alert(other)
    client = client_for(operator)
    for url in (reverse("admin:agents_tradingagent_refinement", args=[agent.pk, foreign.pk, "approve"]),
                reverse("admin:agents_tradingagent_rollback", args=[agent.pk, other.current_version.pk]),
                reverse("admin:agents_tradingagent_acknowledge", args=[agent.pk, alert.pk])):
        assert client.post(url).status_code == 404, url
    foreign.refresh_from_db()
    assert foreign.status == RefinementStatus.PENDING
    assert not AgentAlert.objects.get(pk=alert.pk).acknowledged


@pytest.mark.parametrize("name", ["run-inline", "schedule", "acknowledge-all"])
def test_csrf_is_enforced(operator, agent, name):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    assert client.post(control(agent, name), {"cron": "@daily"}).status_code == 403
    assert not agent.iterations.exists()


def test_controls_are_post_only_and_unknown_ones_404(client_for, operator, agent):
    client = client_for(operator)
    assert client.get(control(agent, "run-inline")).status_code == 405
    assert client.post(control(agent, "self-destruct")).status_code == 404
    assert client.post(reverse("admin:agents_tradingagent_control", args=["not-a-uuid", "run-inline"])).status_code \
        == 404


def test_anonymous_users_are_sent_to_the_login(client, agent):
    response = client.post(control(agent, "run-inline"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_status_json_for_the_page_poll(client_for, operator, agent):
    dispatch.iteration_queue(agent, trigger="manual")
    data = client_for(operator).get(reverse("admin:agents_tradingagent_console_status", args=[agent.pk])).json()
    assert data["active"] == {"number": 1, "status": "queued"} and data["state"] == "stopped"
    assert data["latest"]["number"] == 1
