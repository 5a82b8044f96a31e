"""The tournament_standings command: a table, or JSON, of the stored standings."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.tournaments.helpers import entrants, tournament_of
from tournaments.models import TournamentStanding

pytestmark = pytest.mark.django_db


def test_the_table_lists_every_entrant_in_rank_order_with_the_tournament_figures(notified):
    owner, agents = entrants()
    tournament = tournament_of(owner, agents)
    out = StringIO()
    call_command("tournament_standings", str(tournament.pk), stdout=out)
    text = out.getvalue()
    ranked = [row.agent.name for row in TournamentStanding.objects.filter(tournament=tournament).order_by("rank")]
    assert len(ranked) == 3
    positions = [text.index(name) for name in ranked]
    assert positions == sorted(positions)
    assert "leader's deflated Sharpe" in text and "p(leader's edge over the runner-up is noise)" in text


def test_json_carries_the_rows_and_the_summary(notified):
    owner, agents = entrants()
    tournament = tournament_of(owner, agents)
    out = StringIO()
    call_command("tournament_standings", str(tournament.pk), "--json", "--recompute", stdout=out)
    data = json.loads(out.getvalue())
    assert [row["rank"] for row in data["standings"]] == [1, 2, 3]
    assert data["summary"]["leader"] == data["standings"][0]["agent"]


def test_an_unknown_tournament_is_an_error():
    with pytest.raises(CommandError, match="no tournament with id 999"):
        call_command("tournament_standings", "999", stdout=StringIO())
