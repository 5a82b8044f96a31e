"""Graduation API: every route with and without a trailing slash, status codes, owner scoping."""

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from agents.models import AgentStatus
from graduation.models import GraduationEvent
from graduation.trading.runner import paper_tick
from tests.factories import UserFactory, make_agent
from tests.graduation.helpers import PAPER_LENIENT, add_iteration, append_bars, eligible_agent, paper_agent

pytestmark = pytest.mark.django_db

def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def url(agent, path):
    return f"/api/learning-agents/{agent.pk}/{path}"


@pytest.fixture
def live_ready(settings):
    settings.LAB_PAPER_MIN_BARS = 20
    settings.LAB_PAPER_MIN_TRADES = 1
    agent = paper_agent(PAPER_LENIENT, params={"fast": 3, "slow": 8})
    append_bars(agent.instrument, 40, seed=9)
    paper_tick()
    return agent


@pytest.mark.parametrize("slash", ["", "/"])
def test_eligibility(slash):
    agent = eligible_agent()
    resp = client_for(agent.owner).get(url(agent, "graduation/eligibility") + slash)
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert body["verdict"] == "eligible" and body["target_status"] == "paper_trading"
    assert body["window"]["iterations"] == [3] and body["window"]["iteration"] == 3 and "from" in body["window"]
    assert {"criterion", "required", "actual", "passed", "evidence"} <= set(body["criteria"][0])
    by_name = {row["criterion"]: row for row in body["criteria"]}
    assert {"min_dsr", "max_pbo", "min_track_record"} <= set(by_name) and "min_fold_pass" not in by_name
    assert by_name["min_sharpe_ratio"]["folds_passed"] == 5 and by_name["min_sharpe_ratio"]["test_value"] == 1.2
    assert by_name["min_dsr"]["actual"] == 0.99 and by_name["max_pbo"]["actual"] == 0.1


@pytest.mark.parametrize("slash", ["", "/"])
def test_graduate_to_paper_then_history_and_paper(slash):
    agent = eligible_agent(params={"fast": 3, "slow": 8})
    client = client_for(agent.owner)
    resp = client.post(url(agent, "graduate") + slash, {"reason": "good record"}, format="json")
    assert resp.status_code == 201, resp.content
    assert resp.json()["to_status"] == "paper_trading" and resp.json()["version"] == 1
    append_bars(agent.instrument, 30, seed=2)
    paper_tick()

    history = client.get(url(agent, "graduation/history") + slash).json()
    assert [e["kind"] for e in history["results"]] == ["graduate"]
    paper = client.get(url(agent, "paper") + slash, {"points": 10, "fills": 3}).json()
    assert paper["account"]["bars_processed"] == 30 and not paper["account"]["live"]
    assert len(paper["equity"]) == 10 and len(paper["fills"]) <= 3
    assert paper["equity"][0]["timestamp"] < paper["equity"][-1]["timestamp"]
    assert set(paper["metrics"]) >= {"sharpe", "max_drawdown", "total_return", "num_trades"}
    at = client.get(url(agent, "graduation/version-at") + slash).json()
    assert at["status"] == "paper_trading" and at["version"] == 1 and at["event"]["kind"] == "graduate"


def test_graduate_refused_when_ineligible_lists_the_criteria():
    agent = eligible_agent(iterations=2)
    add_iteration(agent, {"num_trades": 1})
    resp = client_for(agent.owner).post(url(agent, "graduate"), {}, format="json")
    assert resp.status_code == 409
    assert "min_signals: 5 vs required 5 (on the selection data; sealed test 1)" in resp.json()["eligibility"][0]


def test_graduate_refused_on_the_deflated_sharpe_and_pbo():
    agent = eligible_agent(iterations=2)
    add_iteration(agent, evidence={"dsr": 0.5, "pbo": 0.8})
    resp = client_for(agent.owner).post(url(agent, "graduate"), {}, format="json")
    assert resp.status_code == 409
    message = resp.json()["eligibility"][0]
    assert "min_dsr: 0.5 vs required 0.95" in message and "max_pbo: 0.8 vs required 0.5" in message
    agent.refresh_from_db()
    assert agent.status == AgentStatus.LEARNING


def test_live_without_the_permission_is_403_naming_it(live_ready):
    resp = client_for(live_ready.owner).post(url(live_ready, "graduate"), {"reason": "r", "confirm": True},
                                             format="json")
    assert resp.status_code == 403
    assert "graduation.approve_live_trading" in resp.json()["permission"][0]


def grant(user):
    user.user_permissions.add(Permission.objects.get(codename="approve_live_trading"))


def test_live_without_confirm_or_reason_is_400_naming_them(live_ready):
    grant(live_ready.owner)
    client = client_for(type(live_ready.owner).objects.get(pk=live_ready.owner.pk))
    resp = client.post(url(live_ready, "graduate"), {"reason": "solid paper record"}, format="json")
    assert resp.status_code == 400 and set(resp.json()) == {"confirm"}
    resp = client.post(url(live_ready, "graduate"), {"confirm": True}, format="json")
    assert resp.status_code == 400 and set(resp.json()) == {"reason"}
    live_ready.refresh_from_db()
    assert live_ready.status == AgentStatus.PAPER_TRADING


def test_live_when_ineligible_is_409_with_the_reason(live_ready, settings):
    settings.LAB_PAPER_MIN_TRADES = 500
    grant(live_ready.owner)
    client = client_for(type(live_ready.owner).objects.get(pk=live_ready.owner.pk))
    resp = client.post(url(live_ready, "graduate"), {"reason": "r", "confirm": True}, format="json")
    assert resp.status_code == 409 and "paper_trades" in resp.json()["eligibility"][0]


def test_live_with_permission_confirm_and_reason(live_ready):
    grant(live_ready.owner)
    client = client_for(type(live_ready.owner).objects.get(pk=live_ready.owner.pk))
    resp = client.post(url(live_ready, "graduate/"), {"reason": "solid", "confirm": True}, format="json")
    assert resp.status_code == 201, resp.content
    assert resp.json()["to_status"] == "live_trading" and resp.json()["actor"] == live_ready.owner.username
    paper = client.get(url(live_ready, "paper")).json()
    assert paper["account"]["live"] is True


@pytest.mark.parametrize("slash", ["", "/"])
def test_demote_needs_a_reason(slash):
    agent = paper_agent()
    client = client_for(agent.owner)
    resp = client.post(url(agent, "demote") + slash, {}, format="json")
    assert resp.status_code == 400 and "reason" in resp.json()
    resp = client.post(url(agent, "demote") + slash, {"reason": "drifting"}, format="json")
    assert resp.status_code == 201 and resp.json()["to_status"] == "learning"
    assert client.post(url(agent, "demote"), {"reason": "again"}, format="json").status_code == 409


@pytest.mark.parametrize("slash", ["", "/"])
def test_criteria_get_and_put(slash):
    agent = make_agent()
    client = client_for(agent.owner)
    body = client.get(url(agent, "graduation/criteria") + slash).json()
    assert body["overrides"] == {} and body["criteria"] == body["defaults"]
    resp = client.put(url(agent, "graduation/criteria") + slash,
                      {"min_win_rate": 2, "min_fold_pass": "3", "consistency_window": 3, "nope": 1}, format="json")
    assert resp.status_code == 400
    assert set(resp.json()) == {"min_win_rate", "min_fold_pass", "consistency_window", "nope"}
    resp = client.put(url(agent, "graduation/criteria") + slash,
                      {"min_iterations": 2, "min_fold_pass": 4, "max_pbo": 0.3}, format="json")
    assert resp.status_code == 200
    assert resp.json()["criteria"]["min_iterations"] == 2 and resp.json()["criteria"]["max_pbo"] == 0.3
    assert resp.json()["overrides"] == {"min_iterations": 2, "min_fold_pass": 4, "max_pbo": 0.3}
    assert resp.json()["defaults"]["min_dsr"] == 0.95


def test_settings_switches():
    agent = make_agent()
    client = client_for(agent.owner)
    resp = client.patch(url(agent, "graduation/settings"), {"auto_graduate": True}, format="json")
    assert resp.status_code == 200 and resp.json() == {"auto_graduate": True, "auto_apply_in_paper": False}
    resp = client.patch(url(agent, "graduation/settings"), {"auto_graduate": "yes", "x": 1}, format="json")
    assert resp.status_code == 400 and set(resp.json()) == {"auto_graduate", "x"}


def test_paper_without_an_account_and_bad_params():
    agent = make_agent()
    client = client_for(agent.owner)
    body = client.get(url(agent, "paper")).json()
    assert body["account"] is None and body["equity"] == []
    assert client.get(url(agent, "paper"), {"points": "x"}).status_code == 400
    assert client.get(url(agent, "graduation/version-at"), {"at": "yesterday"}).status_code == 400


@pytest.mark.parametrize("method, path, body", [
    ("get", "graduation/eligibility", None), ("post", "graduate", {"reason": "mine now"}),
    ("post", "demote", {"reason": "x"}), ("get", "graduation/history", None),
    ("put", "graduation/criteria", {"min_iterations": 1}), ("get", "paper", None),
    ("get", "graduation/version-at", None), ("patch", "graduation/settings", {"auto_graduate": True}),
])
def test_another_owners_agent_is_a_404_and_stays_untouched(method, path, body):
    agent = paper_agent()
    stranger = client_for(UserFactory())
    resp = getattr(stranger, method)(url(agent, path), body, format="json")
    assert resp.status_code == 404
    agent.refresh_from_db()
    assert agent.status == AgentStatus.PAPER_TRADING and not agent.auto_graduate
    assert GraduationEvent.objects.filter(agent=agent).count() == 1


def test_superusers_see_every_agent_and_anonymous_is_refused():
    agent = eligible_agent()
    root = UserFactory(is_staff=True, is_superuser=True)
    assert client_for(root).get(url(agent, "graduation/eligibility")).status_code == 200
    assert APIClient().get(url(agent, "graduation/eligibility")).status_code == 403


def test_the_routes_do_not_shadow_the_agent_routes():
    agent = make_agent()
    client = client_for(agent.owner)
    assert client.get(f"/api/learning-agents/{agent.pk}").status_code == 200
    assert client.get(f"/api/learning-agents/{agent.pk}/versions").status_code == 200


def test_schema_documents_the_graduation_endpoints():
    agent = make_agent()
    schema = client_for(agent.owner).get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    for path in ("graduation/eligibility", "graduate", "demote", "graduation/history", "graduation/criteria", "paper"):
        assert any(p.endswith(f"{path}/") or p.endswith(path) for p in paths), path
