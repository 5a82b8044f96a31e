"""The tournaments API: create (400 naming the field), list with filters and pagination, detail,
standings with the deflation figures, rounds on demand; another owner's tournament is a 404."""

import datetime as dt

import pytest
from django_celery_beat.models import PeriodicTask
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


def test_patch_changes_name_schedule_and_finishes_and_refuses_by_field(coach):
    owner, agents, client = coach
    tournament = tournament_of(owner, agents)
    url = f"/api/tournaments/{tournament.pk}"
    response = client.patch(url, {"name": "Renamed", "round_schedule": "0 9 * * 1", "schedule_timezone": "Asia/Tokyo",
                                  "description": "weekly"}, format="json")
    assert response.status_code == 200, response.json()
    assert (response.json()["name"], response.json()["schedule_timezone"]) == ("Renamed", "Asia/Tokyo")
    row = PeriodicTask.objects.get(name=f"tournament:{tournament.pk}:round")
    assert (row.crontab.day_of_week, str(row.crontab.timezone)) == ("1", "Asia/Tokyo")
    for body, field in (({"window_start": "2010-12-01T00:00:00Z"}, "window_start"), ({"agents": []}, "agents"),
                        ({"round_schedule": "0 9 * *"}, "round_schedule"), ({"status": "paused"}, "status"),
                        ({"name": ""}, "name")):
        refused = client.patch(url, body, format="json")
        assert refused.status_code == 400 and field in refused.json(), (body, refused.json())
    assert Tournament.objects.get(pk=tournament.pk).name == "Renamed"
    finished = client.patch(url, {"status": "finished"}, format="json")
    assert finished.status_code == 200 and finished.json()["status"] == "finished"
    assert not PeriodicTask.objects.filter(name=row.name).exists()
    reopened = client.patch(url, {"status": "active"}, format="json")
    assert reopened.status_code == 400 and "not reopened" in str(reopened.json()["status"])


def test_entrants_are_added_and_removed_through_the_api(coach):
    owner, agents, client = coach
    tournament = tournament_of(owner, agents[:2])
    url = f"/api/tournaments/{tournament.pk}/entrants"
    narrow = make_agent(owner=owner, instrument=agents[0].instrument, name="narrow", test_fraction=0.1)
    refused = client.post(url, {"agent_ids": [str(narrow.pk)]}, format="json")
    assert refused.status_code == 400 and "fixed common window" in str(refused.json()["agent_ids"])
    assert client.post(url, {"agent_ids": []}, format="json").status_code == 400
    added = client.post(url, {"agent_ids": [str(agents[2].pk)]}, format="json")
    assert added.status_code == 201, added.json()
    assert len(added.json()["entrants"]) == 3 and added.json()["standings_at"] is not None
    assert client.get(f"/api/tournaments/{tournament.pk}/standings").json()["count"] == 3
    assert client.delete(f"{url}/{agents[2].pk}").status_code == 204
    assert client.get(f"/api/tournaments/{tournament.pk}/standings").json()["count"] == 2
    assert client.delete(f"{url}/{agents[2].pk}/").status_code == 404  # no longer an entrant
    last_but_one = client.delete(f"{url}/{agents[1].pk}")
    assert last_but_one.status_code == 409 and "at least 2 entrants" in str(last_but_one.json()["agent_id"])
    assert client.delete(f"{url}/not-a-uuid").status_code == 400


def test_delete_removes_the_tournament_and_its_beat_row_and_another_owner_gets_a_404(coach):
    owner, agents, client = coach
    tournament = tournament_of(owner, agents, round_schedule="0 9 * * 1")
    stranger = APIClient()
    stranger.force_authenticate(UserFactory(username="stranger"))
    assert stranger.delete(f"/api/tournaments/{tournament.pk}").status_code == 404
    assert stranger.patch(f"/api/tournaments/{tournament.pk}", {"name": "x"}, format="json").status_code == 404
    assert stranger.post(f"/api/tournaments/{tournament.pk}/entrants", {"agent_ids": [str(agents[0].pk)]},
                         format="json").status_code == 404
    assert PeriodicTask.objects.filter(name=f"tournament:{tournament.pk}:round").exists()
    assert client.delete(f"/api/tournaments/{tournament.pk}/").status_code == 204
    assert not Tournament.objects.filter(pk=tournament.pk).exists()
    assert not PeriodicTask.objects.filter(name=f"tournament:{tournament.pk}:round").exists()
