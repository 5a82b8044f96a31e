"""core.filters: parameters a view reads (params_or_400) are typed and bounded by their FilterSet
declaration, refused by name, and documented from the same declaration."""

import datetime as dt

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from agents.models import LearningIteration
from graduation.trading.summary import MAX_FILLS, MAX_POINTS
from tests.factories import make_agent

pytestmark = pytest.mark.django_db


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.parametrize(("params", "name", "rule"), [
    ({"points": MAX_POINTS + 1}, "points", f"less than or equal to {MAX_POINTS}"),
    ({"points": 0}, "points", "greater than or equal to 1"),
    ({"fills": "1.5"}, "fills", "whole number"),
    ({"fills": MAX_FILLS + 1}, "fills", f"less than or equal to {MAX_FILLS}"),
])
def test_paper_limits_are_refused_by_name_and_rule(params, name, rule):
    agent = make_agent()
    resp = client_for(agent.owner).get(f"/api/learning-agents/{agent.pk}/paper", params)
    assert resp.status_code == 400
    [message] = resp.json()[name]
    assert rule in message


def test_version_at_reads_a_time_without_offset_in_the_lab_time_zone(settings):
    settings.TIME_ZONE = "Europe/Paris"
    agent = make_agent()
    resp = client_for(agent.owner).get(f"/api/learning-agents/{agent.pk}/graduation/version-at",
                                       {"at": "2024-05-01T12:00:00"})
    assert resp.status_code == 200
    assert dt.datetime.fromisoformat(resp.json()["at"]) == dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)  # CEST: UTC+2


def test_wait_must_be_a_boolean_and_a_refusal_starts_nothing():
    agent = make_agent()
    resp = client_for(agent.owner).post(f"/api/learning-agents/{agent.pk}/iterations?wait=yes")
    assert resp.status_code == 400 and resp.json() == {"wait": ["must be true or false"]}
    assert not LearningIteration.objects.filter(agent=agent).exists()


def test_the_schema_documents_the_declared_parameters():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    paper = schema["paths"]["/api/learning-agents/{agent_id}/paper/"]["get"]["parameters"]
    points = next(p for p in paper if p["name"] == "points")
    assert points["in"] == "query" and points["schema"]["type"] == "integer"
    assert f"1..{MAX_POINTS}" in points["description"]
    post = schema["paths"]["/api/learning-agents/{id}/iterations/"]["post"]["parameters"]
    assert [p["schema"]["type"] for p in post if p["name"] == "wait"] == ["boolean"]
