"""The tournaments API: create (400 naming the field), list with filters and pagination, detail,
standings with the deflation figures, rounds on demand; another owner's tournament is a 404."""

import datetime as dt

import pytest
from rest_framework.test import APIClient

from agents.models import LearningIteration
from tests.factories import UserFactory, make_agent
from tests.tournaments.helpers import entrants, tournament_of
from tournaments.models import Tournament

pytestmark = pytest.mark.django_db


@pytest.fixture
def coach(notified):
    owner, agents = entrants()
    client = APIClient()
    client.force_authenticate(owner)
    return owner, agents, client


def test_create_then_read_the_standings(coach):
    _owner, agents, client = coach
    body = {"name": "Spring cup", "agents": [str(a.pk) for a in agents], "round_schedule": "0 9 * * 1"}
    response = client.post("/api/tournaments", body, format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["name"] == "Spring cup" and len(created["entrants"]) == 3
    assert created["leader"] is not None and created["round_schedule"] == "0 9 * * 1"
    standings = client.get(f"/api/tournaments/{created['id']}/standings?page_size=2").json()
    assert standings["count"] == 3 and [r["rank"] for r in standings["results"]] == [1, 2]
    assert standings["results"][0]["agent"] == created["leader"]
    assert {"deflated_sharpe", "n_trials", "edge", "ranking_rule"} <= set(standings["summary"])
    assert 0 <= standings["summary"]["edge"]["p_value"] <= 1
    assert standings["results"][0]["equity"][0] == 1.0
    detail = client.get(f"/api/tournaments/{created['id']}/").json()
    assert detail["summary"]["leader"] == created["leader"]


@pytest.mark.parametrize(("change", "field"), [
    ({"agents": []}, "agents"),
    ({"agents": ["not-a-uuid", "x"]}, "agents"),
    ({"name": ""}, "name"),
    ({"round_schedule": "61 * * * *"}, "cron"),
    ({"window_start": "2009-01-01T00:00:00Z"}, "window_start"),
    ({"window_end": "2031-01-01T00:00:00Z"}, "window_end"),
    ({"colour": "red"}, "colour"),
])
def test_bad_input_is_a_400_naming_the_field_and_nothing_is_written(coach, change, field):
    _owner, agents, client = coach
    body = {"name": "Cup", "agents": [str(a.pk) for a in agents], **change}
    response = client.post("/api/tournaments", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.json()
    assert not Tournament.objects.exists()


def test_another_owners_agent_cannot_enter_and_another_owners_tournament_is_a_404(coach):
    _owner, agents, client = coach
    stranger = UserFactory(username="stranger")
    theirs = make_agent(owner=stranger, instrument=agents[0].instrument)
    response = client.post("/api/tournaments", {"name": "Cup", "agents": [str(agents[0].pk), str(theirs.pk)]},
                           format="json")
    assert response.status_code == 400 and "no agent of yours" in str(response.json()["agents"])
    other = tournament_of(stranger, [theirs, make_agent(owner=stranger, instrument=agents[0].instrument)])
    assert client.get(f"/api/tournaments/{other.pk}").status_code == 404
    assert client.get(f"/api/tournaments/{other.pk}/standings").status_code == 404
    assert client.get("/api/tournaments").json()["count"] == 0


def test_list_filters_and_pagination(coach):
    owner, agents, client = coach
    tournament_of(owner, agents, name="Spring cup")
    finished = tournament_of(owner, agents, name="Winter cup")
    Tournament.objects.filter(pk=finished.pk).update(status="finished")
    assert [t["name"] for t in client.get("/api/tournaments?search=spring").json()["results"]] == ["Spring cup"]
    assert [t["name"] for t in client.get("/api/tournaments?status=finished").json()["results"]] == ["Winter cup"]
    assert client.get("/api/tournaments?page_size=1").json()["count"] == 2
    assert "status" in client.get("/api/tournaments?status=paused").json()
    assert "page_size" in client.get("/api/tournaments?page_size=0").json()


def test_a_round_on_demand_queues_one_iteration_per_entrant_once(coach):
    owner, agents, client = coach
    tournament = tournament_of(owner, agents)
    first = client.post(f"/api/tournaments/{tournament.pk}/rounds")
    assert first.status_code == 202 and first.json()["number"] == 1
    again = client.post(f"/api/tournaments/{tournament.pk}/rounds")
    assert again.status_code == 200 and again.json()["number"] == 1  # the open round
    assert LearningIteration.objects.count() == 3
    assert client.get(f"/api/tournaments/{tournament.pk}/rounds").json()["count"] == 1
    Tournament.objects.filter(pk=tournament.pk).update(status="finished")
    assert client.post(f"/api/tournaments/{tournament.pk}/rounds").status_code == 409


def test_a_window_inside_every_sealed_window_is_accepted(coach):
    _owner, agents, client = coach
    first = dt.datetime(2010, 1, 4, tzinfo=dt.UTC) + dt.timedelta(days=320)
    body = {"name": "Late cup", "agents": [str(a.pk) for a in agents], "window_start": first.isoformat()}
    response = client.post("/api/tournaments", body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["window_start"].startswith("2010-11-20")
