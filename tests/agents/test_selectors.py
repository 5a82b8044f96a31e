"""The one owner-scoping rule (agents.selectors) as the API, the admin, the console and the shell
apply it: a superuser sees every agent and the lab-wide rows; anyone else, staff included, sees
only their own agents and what hangs under them."""

from io import StringIO

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from agents.admin.common import OwnedAdminMixin
from agents.market.models import BarImport
from agents.models import ActivityLog, StrategyVersion, TradingAgent
from agents.selectors import agents_visible_to, owned_rows, sees_everything
from alerts.models import AgentAlert, AlertType, NotificationChannel, Severity
from alerts.notify import matching_channels
from alerts.services import alert_raise, system_alert_raise
from console import dashboard
from console.operator import reports
from tests.factories import InstrumentFactory, UserFactory, make_agent, random_walk_bars

pytestmark = pytest.mark.django_db


@pytest.fixture
def lab():
    alice = UserFactory(username="alice")  # an API user, no console access
    bob = UserFactory(username="bob", is_staff=True)  # console access and every model permission
    bob.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["agents", "alerts", "graduation"]))
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    instrument = random_walk_bars(InstrumentFactory(symbol="SCOPE"), n=120)
    mine, bobs = make_agent(owner=alice, instrument=instrument, name="alice-agent"), make_agent(
        owner=bob, instrument=instrument, name="bob-agent")
    alerts = {
        "alice": alert_raise(mine, alert_type=AlertType.ERROR, severity=Severity.WARNING, message="alice-alert")[0],
        "bob": alert_raise(bobs, alert_type=AlertType.ERROR, severity=Severity.WARNING, message="bob-alert")[0],
        "lab": system_alert_raise(alert_type=AlertType.SYSTEM, severity=Severity.CRITICAL, message="lab-wide-alert",
                                  fingerprint="beat")[0],
    }
    return {"alice": alice, "bob": bob, "root": root, "mine": mine, "bobs": bobs, "alerts": alerts}


def pks(rows):
    return {row.pk for row in rows}


def test_the_rule_superusers_see_everything_staff_rank_grants_nothing(lab):
    assert [sees_everything(lab[u]) for u in ("alice", "bob", "root")] == [False, False, True]
    assert pks(agents_visible_to(lab["alice"])) == {lab["mine"].pk}
    assert pks(agents_visible_to(lab["bob"])) == {lab["bobs"].pk}
    assert pks(agents_visible_to(lab["root"])) == {lab["mine"].pk, lab["bobs"].pk}
    alerts = lab["alerts"]
    assert pks(owned_rows(AgentAlert.objects.all(), lab["bob"])) == {alerts["bob"].pk}
    assert pks(owned_rows(AgentAlert.objects.all(), lab["root"])) == {a.pk for a in alerts.values()}


@pytest.mark.parametrize(("who", "agents", "alerts"), [
    ("alice", ["mine"], ["alice"]),
    ("bob", ["bobs"], ["bob"]),
    ("root", ["mine", "bobs"], ["alice", "bob", "lab"]),
])
def test_api_lists_follow_the_rule(lab, who, agents, alerts):
    client = APIClient()
    client.force_authenticate(lab[who])
    listed = client.get("/api/learning-agents").json()["results"]
    assert {a["id"] for a in listed} == {str(lab[name].pk) for name in agents}
    listed = client.get("/api/learning-agents/alerts").json()["results"]
    assert {a["id"] for a in listed} == {lab["alerts"][name].pk for name in alerts}


@pytest.mark.parametrize(("who", "status"), [("alice", 200), ("bob", 404), ("root", 200)])
def test_api_routes_of_one_agent_follow_the_rule_in_every_app(lab, who, status):
    client = APIClient()
    client.force_authenticate(lab[who])
    base = f"/api/learning-agents/{lab['mine'].pk}"
    for path in ("", "/iterations", "/alerts", "/graduation/eligibility", "/graduation/history"):
        assert client.get(base + path).status_code == status, path


def _request(user):
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def _owner_path_reaches_a_user(model, path):
    for name in path.split("__"):
        model = model._meta.get_field(name).related_model
    return model is not None and model._meta.label == "auth.User"


def test_every_admin_of_owned_rows_is_scoped_by_the_one_mixin():
    owned = []
    for model, model_admin in admin.site._registry.items():
        names = {f.name for f in model._meta.get_fields()}
        if model is TradingAgent or names & {"agent", "owner", "iteration", "channel", "requested_by"}:
            assert isinstance(model_admin, OwnedAdminMixin), f"{model.__name__}'s admin is not owner-scoped"
            assert _owner_path_reaches_a_user(model, model_admin.owner_path), model.__name__
            owned.append(model)
    assert {TradingAgent, AgentAlert, StrategyVersion, ActivityLog, NotificationChannel, BarImport} <= set(owned)


@pytest.mark.parametrize("model", [TradingAgent, AgentAlert, StrategyVersion, ActivityLog])
def test_admin_querysets_follow_the_rule(lab, model):
    model_admin = admin.site._registry[model]
    path = model_admin.owner_path
    everything = pks(model.objects.all())
    bobs = pks(model.objects.filter(**{path: lab["bob"]}))
    assert bobs and bobs < everything  # the data has rows of both owners (and lab-wide ones)
    assert pks(model_admin.get_queryset(_request(lab["bob"]))) == bobs
    assert pks(model_admin.get_queryset(_request(lab["root"]))) == everything


@pytest.mark.parametrize(("who", "shown", "hidden"), [
    ("bob", ["bob-alert"], ["alice-alert", "lab-wide-alert"]),
    ("root", ["bob-alert", "alice-alert", "lab-wide-alert"], []),
])
def test_console_pages_follow_the_rule(lab, who, shown, hidden):
    client = Client()
    client.force_login(lab[who])
    for url in ("/admin/", "/admin/alerts/agentalert/"):
        html = client.get(url).content.decode()
        assert all(text in html for text in shown), url
        assert not any(text in html for text in hidden), url
    agents_page = client.get("/admin/agents/tradingagent/").content.decode()
    assert "bob-agent" in agents_page and ("alice-agent" in agents_page) == (who == "root")
    all_agents = dashboard.agent_tiles(lab[who])[0][0]
    assert (all_agents["label"], all_agents["value"]) == ("all agents", 2 if who == "root" else 1)


def text(lines):
    return "\n".join(lines)


def test_shell_follows_the_rule(lab):
    bobs_view, roots_view = text(reports.agents_table(lab["bob"])), text(reports.agents_table(lab["root"]))
    assert "bob-agent" in bobs_view and "alice-agent" not in bobs_view
    assert "bob-agent" in roots_view and "alice-agent" in roots_view
    assert "bob-alert" in text(reports.alerts_table(lab["bob"]))
    assert "lab-wide-alert" not in text(reports.alerts_table(lab["bob"]))
    assert "lab-wide-alert" in text(reports.alerts_table(lab["root"]))
    with pytest.raises(CommandError) as refused:
        call_command("lab", "agent", "alice-agent", "--as", "bob", stdout=StringIO())
    assert refused.value.returncode == 4
    out = StringIO()
    call_command("lab", "agent", "alice-agent", "--as", "root", stdout=out)
    assert "alice-agent" in out.getvalue()


def test_lab_wide_alerts_reach_only_those_who_may_see_them(lab):
    channels = {u: NotificationChannel.objects.create(owner=lab[u], name=f"{u}-log", kind="log")
                for u in ("alice", "bob", "root")}
    assert [c.pk for c in matching_channels(lab["alerts"]["lab"])] == [channels["root"].pk]
    assert [c.pk for c in matching_channels(lab["alerts"]["bob"])] == [channels["bob"].pk]
