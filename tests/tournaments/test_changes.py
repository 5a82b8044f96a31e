"""Changing a tournament after creation: name, description, schedule (the beat row follows), finish;
entrants added under the fixed window's rule (forward record from joining) and removed (never
below two), the standings recomputed; nothing written on a refusal."""

import datetime as dt

import pytest
from django_celery_beat.models import PeriodicTask

from agents.market.cache import mark_bars_changed
from agents.market.models import PriceBar
from agents.models import IterationStatus, LearningIteration
from core.errors import Conflict, NotFound, ValidationFailed
from tests.factories import UserFactory, make_agent
from tests.tournaments.helpers import entrants, tournament_of
from tournaments.models import TournamentEntry, TournamentRound, TournamentStanding
from tournaments.services.entrants import tournament_entrant_remove, tournament_entrants_add
from tournaments.services.rounds import round_start
from tournaments.services.tournaments import tournament_update

pytestmark = pytest.mark.django_db


def row_of(tournament):
    return PeriodicTask.objects.select_related("crontab").filter(name=f"tournament:{tournament.pk}:round").first()


def test_the_schedule_changes_and_the_beat_row_follows_until_finished():
    owner, agents = entrants()
    tournament = tournament_of(owner, agents)
    assert row_of(tournament) is None
    tournament_update(tournament, round_schedule="0 9 * * 1-5", schedule_timezone="Europe/Paris", name=" Renamed ",
                      description="daily")
    tournament.refresh_from_db()
    assert (tournament.name, tournament.description, tournament.round_schedule) == ("Renamed", "daily", "0 9 * * 1-5")
    row = row_of(tournament)
    assert (row.crontab.hour, str(row.crontab.timezone)) == ("9", "Europe/Paris")
    tournament_update(tournament, schedule_timezone="Asia/Tokyo")  # the zone alone: the cron kept
    assert (row_of(tournament).crontab.hour, str(row_of(tournament).crontab.timezone)) == ("9", "Asia/Tokyo")
    tournament_update(tournament, round_schedule="")
    assert row_of(tournament) is None
    tournament_update(tournament, round_schedule="30 8 * * *")
    tournament_update(tournament, status="finished")
    tournament.refresh_from_db()
    assert tournament.status == "finished" and row_of(tournament) is None


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"name": " "}, "name", "required"),
    ({"name": "Other"}, "name", "already have"),
    ({"round_schedule": "0 25 * * *"}, "round_schedule", "hour"),
    ({"schedule_timezone": "Mars/Olympus"}, "schedule_timezone", "unknown time zone"),
    ({"status": "active", "name": "Fine"}, "status", "not reopened"),
])
def test_a_bad_change_names_the_field_and_changes_nothing(change, field, words):
    owner, agents = entrants()
    tournament_of(owner, agents, name="Other")
    tournament = tournament_of(owner, agents, round_schedule="0 9 * * 1")
    if change.get("status") == "active":
        tournament_update(tournament, status="finished")
    before = list(type(tournament).objects.filter(pk=tournament.pk).values())
    rows_before = list(PeriodicTask.objects.values_list("name", "crontab_id", "enabled"))
    with pytest.raises(ValidationFailed) as info:
        tournament_update(tournament, **change)
    assert field in info.value.errors and words in info.value.errors[field], info.value.errors
    assert list(type(tournament).objects.filter(pk=tournament.pk).values()) == before
    assert list(PeriodicTask.objects.values_list("name", "crontab_id", "enabled")) == rows_before


def test_an_added_entrant_must_hold_the_fixed_window_in_its_sealed_window(notified):
    owner, agents = entrants()
    tournament = tournament_of(owner, agents[:2])
    narrow = make_agent(owner=owner, instrument=agents[0].instrument, name="narrow", test_fraction=0.1)
    with pytest.raises(ValidationFailed) as info:
        tournament_entrants_add(tournament, agent_ids=[agents[2].pk, narrow.pk], user=owner)
    message = info.value.errors["agent_ids"]
    assert "'narrow'" in message and "fixed common window must lie inside" in message and "B default" not in message
    assert tournament.entries.count() == 2  # all or none
    window = (tournament.window_start, tournament.window_end)
    tournament = tournament_entrants_add(tournament, agent_ids=[agents[2].pk], user=owner)
    assert (tournament.window_start, tournament.window_end) == window  # the window never moves
    assert TournamentStanding.objects.filter(tournament=tournament).count() == 3
    entry = TournamentEntry.objects.get(tournament=tournament, agent=agents[2])
    assert entry.forward_from == agents[2].instrument.bars.order_by("-timestamp").first().timestamp


def test_a_late_entrants_forward_record_starts_when_it_joins(notified):
    owner, agents = entrants()
    default = tournament_of(owner, agents[:2], name="Default window")
    # Ten days in: a newer bar moves the newcomer's sealed window on by one bar, not past this start.
    tournament = tournament_of(owner, agents[:2], window_start=default.window_start + dt.timedelta(days=10))
    newest = agents[2].instrument.bars.order_by("-timestamp").first()
    PriceBar.objects.create(instrument=agents[2].instrument, timestamp=newest.timestamp + dt.timedelta(days=1),
                            open=newest.close, high=newest.close, low=newest.close, close=newest.close)
    mark_bars_changed(agents[2].instrument_id)
    tournament_entrants_add(tournament, agent_ids=[agents[2].pk], user=owner)
    entry = TournamentEntry.objects.get(tournament=tournament, agent=agents[2])
    assert entry.forward_from == newest.timestamp + dt.timedelta(days=1)
    assert TournamentEntry.objects.get(tournament=tournament, agent=agents[0]).forward_from < entry.forward_from


@pytest.mark.parametrize(("ids", "words"), [
    ([], "non-empty list"),
    (["nope"], "UUID"),
    ("agents", "non-empty list"),
])
def test_bad_agent_ids_are_refused_by_name(ids, words):
    owner, agents = entrants()
    tournament = tournament_of(owner, agents[:2])
    with pytest.raises(ValidationFailed) as info:
        tournament_entrants_add(tournament, agent_ids=ids, user=owner)
    assert words in info.value.errors["agent_ids"]


def test_strangers_agents_and_current_entrants_are_refused_and_a_finished_tournament_is_closed():
    owner, agents = entrants()
    tournament = tournament_of(owner, agents[:2])
    stranger = make_agent(owner=UserFactory(username="stranger"), instrument=agents[0].instrument)
    for ids, words in (([stranger.pk], "no agent of yours"), ([agents[0].pk], "already an entrant: 'A default'")):
        with pytest.raises(ValidationFailed) as info:
            tournament_entrants_add(tournament, agent_ids=ids, user=owner)
        assert words in info.value.errors["agent_ids"]
    tournament_update(tournament, status="finished")
    with pytest.raises(Conflict) as info:
        tournament_entrants_add(tournament, agent_ids=[agents[2].pk], user=owner)
    assert "finished" in info.value.errors["status"]
    assert tournament.entries.count() == 2


def test_removing_keeps_two_entrants_and_recomputes_the_standings(notified):
    owner, agents = entrants()
    tournament = tournament_of(owner, agents)
    with pytest.raises(NotFound):
        tournament_entrant_remove(tournament, agent_id=make_agent(owner=owner, instrument=agents[0].instrument).pk)
    with pytest.raises(ValidationFailed):
        tournament_entrant_remove(tournament, agent_id="nope")
    tournament = tournament_entrant_remove(tournament, agent_id=agents[2].pk)
    assert set(tournament.entries.values_list("agent_id", flat=True)) == {agents[0].pk, agents[1].pk}
    assert set(TournamentStanding.objects.filter(tournament=tournament).values_list("agent_id", flat=True)) == {
        agents[0].pk, agents[1].pk}
    assert tournament.leader_id in {agents[0].pk, agents[1].pk}
    with pytest.raises(Conflict) as info:
        tournament_entrant_remove(tournament, agent_id=agents[1].pk)
    reason = info.value.errors["agent_id"]
    assert "at least 2 entrants" in reason and "finish or delete" in reason
    assert tournament.entries.count() == 2


def test_a_removed_entrant_leaves_the_open_round_which_closes_without_it(notified):
    owner, agents = entrants()
    tournament = tournament_of(owner, agents)
    round_, _created = round_start(tournament)
    LearningIteration.objects.filter(agent__in=agents[:2]).update(status=IterationStatus.SUCCEEDED)
    round_.refresh_from_db()
    assert round_.finished_at is None  # still waiting on the third entrant
    tournament_entrant_remove(tournament, agent_id=agents[2].pk)
    round_ = TournamentRound.objects.get(pk=round_.pk)
    assert round_.finished_at is not None and len(round_.iteration_ids) == 2
