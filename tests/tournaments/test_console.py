"""The console's tournament pages: the changelist, the leaderboard, the actions; owner scoping."""

import re

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from tests.factories import UserFactory
from tests.tournaments.helpers import entrants, tournament_of
from tournaments.models import TournamentRound, TournamentStanding
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
