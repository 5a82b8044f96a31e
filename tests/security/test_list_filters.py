"""Every query parameter of every GET in the OpenAPI schema refuses a bad value by name.

Generated from the schema, in the spirit of test_access.py: for each documented query parameter
the test sends values its type or enum rules out (a misspelt choice, an impossible date, a date
that leaves the datetime range once converted to UTC, a non-boolean, a non-UUID, a non-integer,
an unknown ordering field) and requires a 400 whose body names the parameter. A good value of the
same parameter is the control: 200. A free-text parameter (any string is a valid filter) has to be
listed in FREE_TEXT, so a new parameter is either covered or noticed.
"""

import re

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from agents.services import learning
from alerts.models import AgentAlert, AlertType, Delivery, NotificationChannel, Severity
from tests.factories import InstrumentFactory, UserFactory, make_agent, random_walk_bars
from tournaments.services.tournaments import tournament_create

pytestmark = pytest.mark.django_db

# Parameters where every string is a meaningful filter (it may simply match nothing).
FREE_TEXT = {"instrument", "template", "event", "source", "search"}
BAD_DATETIMES = ["garbage", "2026-13-45", "2026-02-30T10:00:00Z", "0001-01-01T00:00:00+01:00"]
BAD = {
    "boolean": ["maybe", "2"],
    "uuid": ["not-a-uuid"],
    "integer": ["abc", "0", "-1", "1.5"],
    "date-time": BAD_DATETIMES,
    "enum": ["bogus", "FAILD"],
    "ordering": ["no_such_field", "-no_such_field", "name,nope"],
}


@pytest.fixture
def world():
    owner = UserFactory(username="filters-owner")
    agent = make_agent(owner=owner, instrument=random_walk_bars(InstrumentFactory(symbol="FLT"), n=300))
    learning.iteration_run_now(agent, trigger="api")
    alert = AgentAlert.objects.create(agent=agent, alert_type=AlertType.ERROR, severity=Severity.WARNING, message="m")
    channel = NotificationChannel.objects.create(owner=owner, name="c", kind="log", min_severity=Severity.INFO)
    Delivery.objects.create(alert=alert, channel=channel)
    rival = make_agent(owner=owner, instrument=agent.instrument)
    tournament = tournament_create(owner, name="filters cup", agent_ids=[agent.pk, rival.pk])
    client = APIClient()
    client.force_authenticate(owner)
    return {"agent": agent, "channel": channel, "client": client, "tournament": tournament}


def get_operations():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path, item in sorted(schema["paths"].items()):
        operation = item.get("get")
        if operation:
            query = [p for p in operation.get("parameters", []) if p["in"] == "query"]
            if query:
                yield path, query


def concrete(path, world):
    def fill(match):
        name = match.group(1)
        if path.startswith("/api/notification-channels/"):
            return str(world["channel"].pk)
        if path.startswith("/api/tournaments/"):
            return str(world["tournament"].pk)
        if name in ("id", "agent_id"):
            return str(world["agent"].pk)
        raise AssertionError(f"{path}: unknown path parameter {{{name}}}: map it in test_list_filters.py")
    return re.sub(r"{(\w+)}", fill, path)


def kind_of(parameter):
    schema = parameter["schema"]
    if parameter["name"] == "ordering":
        return "ordering"
    if schema.get("enum") or schema.get("items", {}).get("enum"):
        return "enum"
    if schema.get("format") in ("date-time", "uuid"):
        return schema["format"]
    return schema.get("type", "string")


def good_value(parameter):
    kind, schema = kind_of(parameter), parameter["schema"]
    return {
        "enum": lambda: (schema.get("enum") or schema["items"]["enum"])[0],
        "date-time": lambda: "2020-01-01T00:00:00+02:00",
        "boolean": lambda: "true",
        "uuid": lambda: "00000000-0000-0000-0000-000000000000",
        "integer": lambda: "1",
        "ordering": lambda: None,
        "string": lambda: "anything",
    }[kind]()


def test_every_query_parameter_refuses_a_bad_value_by_name(world):
    client, tried, wrong, uncovered = world["client"], 0, [], []
    for path, parameters in get_operations():
        url = concrete(path, world)
        for parameter in parameters:
            name, kind = parameter["name"], kind_of(parameter)
            good = good_value(parameter)
            if good is not None:
                resp = client.get(url, {name: good})
                assert resp.status_code == 200, (url, name, good, resp.status_code, resp.content[:300])
            if kind == "string":
                if name not in FREE_TEXT:
                    uncovered.append(f"{path} ?{name}")
                continue
            for bad in BAD[kind]:
                resp = client.get(url, {name: bad})
                tried += 1
                body = resp.json() if resp.get("Content-Type", "").startswith("application/json") else {}
                if resp.status_code != 400 or name not in body:
                    wrong.append(f"GET {url}?{name}={bad} -> {resp.status_code} {resp.content[:200]!r}")
    assert not uncovered, f"free-text parameters not listed in FREE_TEXT (give them a rule or list them): {uncovered}"
    assert not wrong, "bad query values must be a 400 naming the parameter:\n" + "\n".join(wrong)
    assert tried >= 80


def test_the_filters_of_the_issue_are_refused_and_good_ones_filter(world):
    client, agent = world["client"], world["agent"]
    base = f"/api/learning-agents/{agent.pk}"
    for query in ("status=faild", "trigger=bogus", "since=garbage", "since=2026-13-45", "until=garbage",
                  "since=0001-01-01T00:00:00%2B01:00"):
        resp = client.get(f"{base}/iterations?{query}")
        assert resp.status_code == 400 and query.split("=")[0] in resp.json(), (query, resp.content)
    resp = client.get(f"{base}/refinements?status=bogus")
    assert resp.status_code == 400 and "status" in resp.json()
    assert "faild" in resp.json()["status"][0] or "bogus" in resp.json()["status"][0]
    # The control: valid values do filter.
    assert client.get(f"{base}/iterations?status=succeeded").json()["count"] == 1
    assert client.get(f"{base}/iterations?status=failed").json()["count"] == 0
    assert client.get(f"{base}/iterations?since=2999-01-01T00:00:00Z").json()["count"] == 0
    assert client.get(f"{base}/refinements?status=pending").json()["count"] >= 1


def test_pagination_parameters_are_checked(world):
    client = world["client"]
    for query, name in (("page_size=0", "page_size"), ("page_size=501", "page_size"), ("page_size=x", "page_size"),
                        ("page=0", "page"), ("page=x", "page")):
        resp = client.get(f"/api/learning-agents/?{query}")
        assert resp.status_code == 400 and name in resp.json(), (query, resp.content)
    assert client.get("/api/learning-agents/?page_size=500").status_code == 200
    assert client.get("/api/learning-agents/?page=last").status_code == 200
    assert client.get("/api/learning-agents/?page=99").status_code == 404  # past the end: not found
