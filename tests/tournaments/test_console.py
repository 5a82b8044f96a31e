"""The console's tournament pages: the changelist, the leaderboard, the actions; owner scoping."""

import re

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django_celery_beat.models import PeriodicTask

from tests.factories import UserFactory, make_agent
from tests.tournaments.helpers import entrants, tournament_of
from tournaments.models import Tournament, TournamentRound, TournamentStanding
from tournaments.services.standings import standings_recompute

pytestmark = pytest.mark.django_db


def staff(username):
    user = UserFactory(username=username, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["agents", "tournaments"]))
    client = Client()
    client.force_login(user)
    return user, client


def test_the_leaderboard_shows_every_entrant_with_its_sparkline_and_the_tournament_figures(notified):
    user, client = staff("coach2")
    owner, agents = entrants(owner=user)
    tournament = tournament_of(owner, agents)
    tournament = standings_recompute(tournament.pk)
    page = client.get(f"/admin/tournaments/tournament/{tournament.pk}/change/").content.decode()
    ranked = list(TournamentStanding.objects.filter(tournament=tournament).order_by("rank"))
    for row in ranked:
        assert f'data-rank="{row.rank}" data-agent="{row.agent_id}"' in page
    assert len(re.findall(r'<svg class="lab-spark"', page)) == 3
    assert f"{tournament.summary['deflated_sharpe']:.4f}" in page
    assert f"{tournament.summary['edge']['p_value']:.4f}" in page
    listing = client.get("/admin/tournaments/tournament/").content.decode()
    assert "Cup" in listing and ranked[0].agent.name in listing


def test_another_owners_tournament_is_not_shown_and_actions_call_the_services(notified):
    owner, agents = entrants()
    theirs = tournament_of(owner, agents)
    _user, client = staff("outsider")
    assert client.get(f"/admin/tournaments/tournament/{theirs.pk}/change/").status_code == 302  # not found
    assert "Cup" not in client.get("/admin/tournaments/tournament/").content.decode()
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    root_client = Client()
    root_client.force_login(root)
    response = root_client.post("/admin/tournaments/tournament/", {
        "action": "run_round_now", "_selected_action": [theirs.pk]}, follow=True)
    assert "round 1 started" in response.content.decode()
    assert TournamentRound.objects.filter(tournament=theirs).count() == 1
    response = root_client.post("/admin/tournaments/tournament/", {
        "action": "recompute_standings", "_selected_action": [theirs.pk]}, follow=True)
    assert "standings recomputed" in response.content.decode()
    assert TournamentStanding.objects.filter(tournament=theirs).count() == 3


def test_the_description_is_the_one_thing_the_page_edits(notified):
    user, client = staff("editor")
    owner, agents = entrants(owner=user)
    tournament = tournament_of(owner, agents)
    response = client.post(f"/admin/tournaments/tournament/{tournament.pk}/change/",
                           {"description": "Spring, daily bars", "name": "Renamed?"})
    assert response.status_code == 302
    tournament.refresh_from_db()
    assert (tournament.description, tournament.name) == ("Spring, daily bars", "Cup")


def test_the_add_page_creates_through_the_service_among_the_users_agents(notified, django_capture_on_commit_callbacks):
    user, client = staff("founder")
    _owner, agents = entrants(owner=user)
    make_agent(owner=UserFactory(username="other"), instrument=agents[0].instrument, name="not yours")
    page = client.get("/admin/tournaments/tournament/add/").content.decode()
    assert all(a.name in page for a in agents) and "not yours" not in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/tournaments/tournament/add/", {
            "name": "Console cup", "agents": [str(a.pk) for a in agents], "description": "",
            "round_schedule": "0 9 * * 1", "schedule_timezone": "UTC", "window_start": "", "window_end": ""})
    assert response.status_code == 302, response.content.decode()[:3000]
    tournament = Tournament.objects.get(name="Console cup")
    assert tournament.owner == user and tournament.entries.count() == 3
    assert TournamentStanding.objects.filter(tournament=tournament).count() == 3  # computed once it committed
    assert PeriodicTask.objects.filter(name=f"tournament:{tournament.pk}:round").exists()


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"agents": "one"}, "agents", "2 to 50"),
    ({"round_schedule": "0 25 * * *"}, "round_schedule", "hour"),
    ({"window_start": "2009-01-01 00:00"}, "window_start", "sealed test window"),
    ({"agents": "stranger"}, "agents", "Select a valid choice"),
])
def test_the_add_page_shows_the_services_refusal_on_the_field_and_writes_nothing(notified, change, field, words):
    user, client = staff("founder")
    _owner, agents = entrants(owner=user)
    stranger_agent = make_agent(owner=UserFactory(username="other"), instrument=agents[0].instrument)
    ids = {"one": [str(agents[0].pk)], "stranger": [str(agents[0].pk), str(stranger_agent.pk)]}
    body = {"name": "Console cup", "agents": [str(a.pk) for a in agents], "description": "", "round_schedule": "",
            "schedule_timezone": "UTC", "window_start": "", "window_end": "", **change}
    if "agents" in change:
        body["agents"] = ids[change["agents"]]
    response = client.post("/admin/tournaments/tournament/add/", body)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert words in " ".join(errors[field]), errors
    assert not Tournament.objects.exists() and not PeriodicTask.objects.filter(name__startswith="tournament:").exists()


def test_entrants_are_added_and_removed_from_the_tournament_page(notified):
    user, client = staff("manager")
    owner, agents = entrants(owner=user)
    tournament = tournament_of(owner, agents[:2])
    narrow = make_agent(owner=user, instrument=agents[0].instrument, name="narrow", test_fraction=0.1)
    page = client.get(f"/admin/tournaments/tournament/{tournament.pk}/change/").content.decode()
    assert f'data-entrant="{agents[0].pk}"' in page and 'id="entrant-add"' in page
    assert f'value="{agents[2].pk}"' in page and f'value="{agents[0].pk}"' not in page  # entrants are not offered
    base = f"/admin/tournaments/tournament/{tournament.pk}/entrants"
    refused = client.post(f"{base}/add/", {"agents": [str(narrow.pk)]}, follow=True).content.decode()
    assert "fixed common window must lie inside" in refused and tournament.entries.count() == 2
    added = client.post(f"{base}/add/", {"agents": [str(agents[2].pk)]}, follow=True).content.decode()
    assert "Added B default; standings recomputed" in added
    assert tournament.entries.count() == 3
    assert TournamentStanding.objects.filter(tournament=tournament).count() == 3
    client.post(f"{base}/{agents[2].pk}/remove/", follow=True)
    assert tournament.entries.count() == 2
    refused = client.post(f"{base}/{agents[1].pk}/remove/", follow=True).content.decode()
    assert "at least 2 entrants" in refused and tournament.entries.count() == 2
    assert client.get(f"{base}/{agents[1].pk}/remove/").status_code == 405
    _outsider, outsider_client = staff("outsider")
    outsider_client.post(f"{base}/{agents[0].pk}/remove/")
    outsider_client.post(f"{base}/add/", {"agents": [str(agents[2].pk)]})
    assert tournament.entries.count() == 2
