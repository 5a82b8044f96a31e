"""Alert API: listing with filters, acknowledge (one and bulk), delete, owner scoping, both slash forms."""

import datetime as dt

import pytest
from rest_framework.test import APIClient

from agents.models import ActivityLog
from alerts.models import AgentAlert, AlertType, Severity
from alerts.services import alert_raise, system_alert_raise
from tests.factories import InstrumentFactory, UserFactory, make_agent

# Alerts raised here are checked through the API; their channel fan-out is test_notify.py's business.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("notified")]

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def instrument():
    return InstrumentFactory(symbol="SYNALERT")


@pytest.fixture
def agent(user, instrument):
    return make_agent(owner=user, instrument=instrument, name="mine")


@pytest.fixture
def stranger_agent(instrument):
    return make_agent(owner=UserFactory(username="mallory"), instrument=instrument, name="theirs")


def alert(agent, alert_type=AlertType.ERROR, severity=Severity.WARNING, fingerprint="", now=T0, message="m"):
    return alert_raise(agent, alert_type=alert_type, severity=severity, message=message, fingerprint=fingerprint,
                       now=now)[0]


def base(agent):
    return f"/api/learning-agents/{agent.pk}"


def ids(resp):
    assert resp.status_code == 200, resp.data
    return {row["id"] for row in resp.data["results"]}


@pytest.mark.parametrize("slash", ["", "/"])
def test_agent_alerts_list_all_of_that_agent(api, agent, stranger_agent, slash):
    open_one = alert(agent, fingerprint="a")
    closed = alert(agent, fingerprint="b")
    AgentAlert.objects.filter(pk=closed.pk).update(acknowledged=True)
    alert(stranger_agent)
    resp = api.get(f"{base(agent)}/alerts{slash}")
    assert ids(resp) == {open_one.pk, closed.pk}
    row = next(r for r in resp.data["results"] if r["id"] == open_one.pk)
    assert row["agent"] == str(agent.pk) and row["agent_name"] == "mine"
    assert row["alert_type"] == "ERROR" and row["severity"] == "WARNING" and row["occurrence_count"] == 1
    assert ids(api.get(f"{base(agent)}/alerts{slash}?acknowledged=false")) == {open_one.pk}


@pytest.mark.parametrize("slash", ["", "/"])
def test_alerts_of_all_my_agents_are_the_open_ones(api, user, agent, stranger_agent, instrument, slash):
    second = make_agent(owner=user, instrument=instrument, name="mine-2")
    a1, a2 = alert(agent), alert(second, AlertType.MILESTONE, Severity.INFO)
    closed = alert(agent, fingerprint="closed")
    AgentAlert.objects.filter(pk=closed.pk).update(acknowledged=True)
    alert(stranger_agent)
    system_alert_raise(alert_type=AlertType.SYSTEM, severity=Severity.CRITICAL, message="beat is down",
                       fingerprint="beat")
    assert ids(api.get(f"/api/learning-agents/alerts{slash}")) == {a1.pk, a2.pk}
    assert ids(api.get(f"/api/learning-agents/alerts{slash}?acknowledged=true")) == {closed.pk}


def test_superusers_see_every_alert_including_lab_wide_ones(agent, stranger_agent):
    staff = UserFactory(username="root", is_staff=True, is_superuser=True)
    c = APIClient()
    c.force_authenticate(staff)
    mine, theirs = alert(agent), alert(stranger_agent)
    system, _ = system_alert_raise(alert_type=AlertType.SYSTEM, severity=Severity.CRITICAL, message="beat is down",
                                   fingerprint="beat")
    resp = c.get("/api/learning-agents/alerts")
    assert ids(resp) == {mine.pk, theirs.pk, system.pk}
    assert next(r for r in resp.data["results"] if r["id"] == system.pk)["agent"] is None


def test_filters_by_type_severity_and_time(api, agent):
    error = alert(agent, AlertType.ERROR, Severity.CRITICAL, now=T0)
    degradation = alert(agent, AlertType.PERFORMANCE_DEGRADATION, Severity.WARNING, now=T0 + dt.timedelta(hours=1))
    milestone = alert(agent, AlertType.MILESTONE, Severity.INFO, now=T0 + dt.timedelta(hours=2))
    url = "/api/learning-agents/alerts"
    assert ids(api.get(url, {"type": "ERROR"})) == {error.pk}
    assert ids(api.get(f"{url}?type=ERROR&type=MILESTONE")) == {error.pk, milestone.pk}
    assert ids(api.get(url, {"severity": "WARNING"})) == {degradation.pk}
    assert ids(api.get(url, {"min_severity": "WARNING"})) == {error.pk, degradation.pk}
    since = (T0 + dt.timedelta(minutes=30)).isoformat()
    until = (T0 + dt.timedelta(minutes=90)).isoformat()
    assert ids(api.get(url, {"since": since})) == {degradation.pk, milestone.pk}
    assert ids(api.get(url, {"since": since, "until": until})) == {degradation.pk}
    assert ids(api.get(f"{base(agent)}/alerts", {"type": "MILESTONE"})) == {milestone.pk}
    resp = api.get(url, {"severity": "LOUD"})
    assert resp.status_code == 400 and "severity" in resp.data


def test_newest_activity_first(api, agent):
    old = alert(agent, fingerprint="old", now=T0)
    new = alert(agent, fingerprint="new", now=T0 + dt.timedelta(hours=1))
    alert(agent, fingerprint="old", now=T0 + dt.timedelta(hours=2))  # the old one recurs
    resp = api.get("/api/learning-agents/alerts")
    assert [r["id"] for r in resp.data["results"]] == [old.pk, new.pk]


@pytest.mark.parametrize("slash", ["", "/"])
def test_acknowledge_one_alert(api, user, agent, slash):
    a = alert(agent)
    resp = api.post(f"{base(agent)}/alerts/{a.pk}/acknowledge{slash}")
    assert resp.status_code == 200, resp.data
    assert resp.data["acknowledged"] is True and resp.data["acknowledged_by"] == "alice"
    assert resp.data["acknowledged_at"]
    a.refresh_from_db()
    assert a.acknowledged and a.acknowledged_by == user
    assert ActivityLog.objects.filter(agent=agent, event="alert_acknowledged").exists()
    assert ids(api.get("/api/learning-agents/alerts")) == set()


@pytest.mark.parametrize("slash", ["", "/"])
def test_delete_one_alert(api, agent, slash):
    a = alert(agent)
    resp = api.delete(f"{base(agent)}/alerts/{a.pk}{slash}")
    assert resp.status_code == 204
    assert not AgentAlert.objects.filter(pk=a.pk).exists()


def test_another_owners_alert_is_a_404_and_stays_untouched(api, agent, stranger_agent):
    theirs = alert(stranger_agent)
    assert api.get(f"{base(stranger_agent)}/alerts").status_code == 404
    assert api.post(f"{base(stranger_agent)}/alerts/{theirs.pk}/acknowledge").status_code == 404
    assert api.delete(f"{base(stranger_agent)}/alerts/{theirs.pk}").status_code == 404
    # Nor through one's own agent's path.
    assert api.post(f"{base(agent)}/alerts/{theirs.pk}/acknowledge/").status_code == 404
    assert api.delete(f"{base(agent)}/alerts/{theirs.pk}/").status_code == 404
    theirs.refresh_from_db()
    assert not theirs.acknowledged


def test_bulk_acknowledge_by_ids_only_touches_mine(api, agent, stranger_agent):
    a, b, c = (alert(agent, fingerprint=f) for f in "abc")
    theirs = alert(stranger_agent)
    resp = api.post("/api/learning-agents/alerts/acknowledge", {"ids": [a.pk, b.pk, theirs.pk, 999999]},
                       format="json")
    assert resp.status_code == 200, resp.data
    assert resp.data == {"acknowledged": 2, "not_found": sorted([theirs.pk, 999999])}
    assert set(AgentAlert.objects.filter(acknowledged=True).values_list("pk", flat=True)) == {a.pk, b.pk}
    assert set(AgentAlert.objects.filter(acknowledged=False).values_list("pk", flat=True)) == {c.pk, theirs.pk}


@pytest.mark.parametrize("slash", ["", "/"])
def test_bulk_acknowledge_by_filters_or_all(api, agent, stranger_agent, slash):
    error = alert(agent, AlertType.ERROR, Severity.WARNING)
    milestone = alert(agent, AlertType.MILESTONE, Severity.INFO)
    theirs = alert(stranger_agent, AlertType.MILESTONE, Severity.INFO)
    url = f"/api/learning-agents/alerts/acknowledge{slash}"
    resp = api.post(url, {"type": "MILESTONE"}, format="json")
    assert resp.data["acknowledged"] == 1
    milestone.refresh_from_db()
    assert milestone.acknowledged
    assert api.post(url, {"all": True}, format="json").data["acknowledged"] == 1
    error.refresh_from_db()
    theirs.refresh_from_db()
    assert error.acknowledged and not theirs.acknowledged


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "ids"), ({"ids": []}, "ids"), ({"ids": ["x"]}, "ids"), ({"ids": [1], "all": True}, "ids"),
     ({"type": ["NOPE"]}, "type"), ({"since": "yesterday"}, "since")],
)
def test_bulk_acknowledge_refuses_a_vague_or_bad_request(api, agent, body, field):
    a = alert(agent)
    resp = api.post("/api/learning-agents/alerts/acknowledge", body, format="json")
    assert resp.status_code == 400 and field in resp.data, resp.data
    a.refresh_from_db()
    assert not a.acknowledged


def test_alert_routes_do_not_shadow_the_agent_routes(api, agent):
    assert api.get("/api/learning-agents").status_code == 200
    assert api.get(f"{base(agent)}/").data["name"] == "mine"
    assert "results" in api.get("/api/learning-agents/alerts/").data


def test_anonymous_is_refused(agent):
    anonymous = APIClient()
    assert anonymous.get("/api/learning-agents/alerts").status_code == 403
    assert anonymous.get(f"{base(agent)}/alerts").status_code == 403


def test_schema_documents_the_alert_endpoints(api):
    resp = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert resp.status_code == 200
    paths = resp.json()["paths"]
    assert "/api/learning-agents/alerts/" in paths
    assert "post" in paths["/api/learning-agents/alerts/acknowledge/"]
    assert "delete" in paths["/api/learning-agents/{agent_id}/alerts/{alert_id}/"]
    assert "post" in paths["/api/learning-agents/{agent_id}/alerts/{alert_id}/acknowledge/"]


# --- the operator console (admin) ---------------------------------------------------------
@pytest.fixture
def console():
    def login(user):
        user.is_staff = True
        user.save()
        from django.test import Client

        c = Client()
        c.force_login(user)
        return c

    return login


def test_console_lists_only_my_agents_alerts_for_non_superusers(console, user, agent, stranger_agent):
    from django.contrib.auth.models import Permission

    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_agentalert", "delete_agentalert",
                                                                      "change_agentalert"]))
    mine, theirs = alert(agent, message="mine-alert"), alert(stranger_agent, message="their-alert")
    c = console(user)
    page = c.get("/admin/alerts/agentalert/")
    assert page.status_code == 200
    assert b"mine-alert" in page.content and b"their-alert" not in page.content
    assert c.get(f"/admin/alerts/agentalert/{theirs.pk}/change/").status_code == 302  # not found -> redirect
    resp = c.post("/admin/alerts/agentalert/", {"action": "acknowledge_selected",
                                                "_selected_action": [mine.pk, theirs.pk]})
    assert resp.status_code == 302
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.acknowledged and mine.acknowledged_by == user and not theirs.acknowledged
    resp = c.post("/admin/alerts/agentalert/", {"action": "delete_selected", "_selected_action": [mine.pk],
                                                "post": "yes"})
    assert resp.status_code == 302 and not AgentAlert.objects.filter(pk=mine.pk).exists()
    assert ActivityLog.objects.filter(agent=agent, event="alert_deleted").exists()


def test_console_superuser_sees_lab_wide_alerts(console, agent):
    admin_user = UserFactory(username="root")
    admin_user.is_superuser = True
    system, _ = system_alert_raise(alert_type=AlertType.SYSTEM, severity=Severity.CRITICAL, message="beat-is-down",
                                   fingerprint="beat")
    c = console(admin_user)
    assert b"beat-is-down" in c.get("/admin/alerts/agentalert/").content
    assert c.get(f"/admin/alerts/agentalert/{system.pk}/change/").status_code == 200


def test_console_view_only_staff_cannot_acknowledge(console, user, agent):
    from django.contrib.auth.models import Permission

    user.user_permissions.add(Permission.objects.get(codename="view_agentalert"))
    mine = alert(agent, message="mine-alert")
    c = console(user)
    assert b"mine-alert" in c.get("/admin/alerts/agentalert/").content
    c.post("/admin/alerts/agentalert/", {"action": "acknowledge_selected", "_selected_action": [mine.pk]})
    mine.refresh_from_db()
    assert not mine.acknowledged
