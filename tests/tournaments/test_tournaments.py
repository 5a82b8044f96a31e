"""Creating a tournament: entrants, the common window inside every sealed window, refusals by field."""

import datetime as dt

import numpy as np
import pytest

from agents.market.cache import load_bars
from core.errors import ValidationFailed
from graduation.trading.accounts import to_datetime
from tests.factories import InstrumentFactory, UserFactory, make_agent, random_walk_bars
from tests.tournaments.helpers import entrants, tournament_of
from tournaments.models import Tournament, TournamentEntry

pytestmark = pytest.mark.django_db


def sealed_bounds(agent):
    """First and last timestamps of the newest floor(n * test_fraction) bars (the protocol's rule)."""
    ts = load_bars(agent.instrument_id).timestamps
    n_test = int(np.floor(len(ts) * agent.test_fraction))
    return to_datetime(ts[len(ts) - n_test]), to_datetime(ts[-1])


def test_the_default_window_is_the_intersection_of_the_sealed_windows():
    owner, agents = entrants()
    agents[2].test_fraction = 0.1
    agents[2].save(update_fields=["test_fraction"])
    tournament = tournament_of(owner, agents)
    assert tournament.window_start == max(sealed_bounds(a)[0] for a in agents)
    assert tournament.window_end == min(sealed_bounds(a)[1] for a in agents)
    assert tournament.window_start == sealed_bounds(agents[2])[0]  # the narrowest sealed window wins
    entry = TournamentEntry.objects.get(tournament=tournament, agent=agents[0])
    assert entry.forward_from == sealed_bounds(agents[0])[1]


def refused(owner, agents, **kwargs):
    with pytest.raises(ValidationFailed) as info:
        tournament_of(owner, agents, **kwargs)
    assert not Tournament.objects.exists()  # nothing half-written
    return info.value.errors


def test_a_window_reaching_into_an_entrants_selection_data_is_refused_naming_the_field():
    owner, agents = entrants()
    start, end = sealed_bounds(agents[0])
    errors = refused(owner, agents, window_start=start - dt.timedelta(days=1))
    assert "window_start" in errors and "sealed test window" in errors["window_start"]
    errors = refused(owner, agents, window_end=end + dt.timedelta(days=1))
    assert "window_end" in errors and "sealed test window" in errors["window_end"]
    errors = refused(owner, agents, window_start=start + dt.timedelta(days=70))
    assert "at least 20 needed" in errors["window_start"]
    errors = refused(owner, agents, window_start=start + dt.timedelta(days=5), window_end=start + dt.timedelta(days=2))
    assert "after window_start" in errors["window_end"]
    errors = refused(owner, agents, window_start=dt.datetime(2011, 1, 1))  # naive on purpose
    assert "UTC offset" in errors["window_start"]


def test_a_window_inside_every_sealed_window_is_kept():
    owner, agents = entrants()
    start, end = sealed_bounds(agents[0])
    tournament = tournament_of(owner, agents, window_start=start + dt.timedelta(days=10), window_end=end)
    assert tournament.window_start == start + dt.timedelta(days=10)


def test_entrants_must_be_two_or_more_agents_the_owner_sees():
    owner, agents = entrants()
    stranger = make_agent(owner=UserFactory(username="stranger"), instrument=agents[0].instrument)
    assert "agents" in refused(owner, agents[:1])
    assert "no agent of yours" in refused(owner, [*agents, stranger])["agents"]
    assert "UUID" in refused(owner, ["nope", "neither"])["agents"]
    superuser = UserFactory(username="root", is_superuser=True)
    assert tournament_of(superuser, [agents[0], stranger]).entries.count() == 2


def test_name_and_cron_are_checked_before_anything_is_written():
    owner, agents = entrants()
    assert "name" in refused(owner, agents, name=" ")
    assert "cron" in refused(owner, agents, round_schedule="0 25 * * *")
    assert "timezone" in refused(owner, agents, round_schedule="0 9 * * 1", schedule_timezone="Mars/Olympus")
    tournament_of(owner, agents)
    with pytest.raises(ValidationFailed) as info:
        tournament_of(owner, agents)
    assert "already have a tournament" in info.value.errors["name"]


def test_entrants_whose_sealed_windows_do_not_overlap_are_refused():
    owner, agents = entrants()
    other = random_walk_bars(InstrumentFactory(symbol="LATER"), n=300, start=dt.datetime(2015, 1, 5, tzinfo=dt.UTC))
    errors = refused(owner, [agents[0], make_agent(owner=owner, instrument=other)])
    # The later instrument's sealed window starts after the earlier one's ends.
    assert "do not overlap" in errors["agents"]
