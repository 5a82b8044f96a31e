"""Beat's periodic tournament work: the round rows reconciled with the tournaments' columns, and the
standings recomputed (through recompute_standings_task) when the entrants' accounts traded new bars."""

import datetime as dt
import json

import pytest
from django.conf import settings
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from agents.services.scheduling import agent_schedule_sync
from graduation.models import PaperAccount
from tests.tournaments.helpers import entrants, forward_record, tournament_of
from tournaments import task_names
from tournaments.models import Tournament
from tournaments.services.standings import standings_recompute, standings_refresh_stale
from tournaments.services.tournaments import tournament_finish
from tournaments.tasks import recompute_standings_task, reconcile_schedules_task, refresh_stale_standings_task

pytestmark = pytest.mark.django_db


def row(tournament):
    return PeriodicTask.objects.select_related("crontab").filter(name=f"tournament:{tournament.pk}:round").first()


def test_beat_runs_the_reconcile_and_the_refresh_under_their_task_names():
    tasks = {entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert tasks[task_names.RECONCILE_SCHEDULES] == 300.0
    assert tasks[task_names.REFRESH_STALE_STANDINGS] == float(settings.LAB_PAPER_INTERVAL_SECONDS)


def test_reconcile_recreates_reverts_and_removes_tournament_rows_and_leaves_agents_rows_alone():
    owner, agents = entrants()
    missing = tournament_of(owner, agents, name="missing", round_schedule="0 9 * * 1-5")
    edited = tournament_of(owner, agents, name="edited", round_schedule="0 9 * * 1-5", schedule_timezone="Europe/Paris")
    finished = tournament_of(owner, agents, name="finished", round_schedule="0 9 * * 1")
    agents[0].learning_schedule, agents[0].auto_learn_enabled = "0 6 * * *", True
    agents[0].save(update_fields=["learning_schedule", "auto_learn_enabled"])
    agent_schedule_sync(agents[0])
    original = row(edited)
    row(missing).delete()
    PeriodicTask.objects.filter(pk=original.pk).update(
        crontab=CrontabSchedule.objects.create(minute="*", hour="*"), enabled=False, args="[12345]", queue="x")
    tournament_finish(finished)
    stray = PeriodicTask.objects.create(name=f"tournament:{finished.pk}:round", task=task_names.SCHEDULED_ROUND,
                                        crontab=original.crontab, args=json.dumps([str(finished.pk)]))
    orphan = PeriodicTask.objects.create(name="tournament:987654:round", task=task_names.SCHEDULED_ROUND,
                                         crontab=original.crontab, args="[987654]")

    summary = reconcile_schedules_task()

    assert summary == {"tournaments": 2, "created": 1, "updated": 1, "deleted": 2}
    assert row(missing).task == task_names.SCHEDULED_ROUND and json.loads(row(missing).args) == [str(missing.pk)]
    fixed = row(edited)
    assert (fixed.crontab.minute, fixed.crontab.hour, str(fixed.crontab.timezone)) == ("0", "9", "Europe/Paris")
    assert fixed.enabled and json.loads(fixed.args) == [str(edited.pk)] and fixed.queue == "default"
    assert not PeriodicTask.objects.filter(pk__in=[stray.pk, orphan.pk]).exists()
    assert PeriodicTask.objects.filter(name=f"agent:{agents[0].pk}:learn").exists()
    assert reconcile_schedules_task() == {"tournaments": 2, "created": 0, "updated": 0, "deleted": 0}


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr("config.task_messages.send", lambda name, *args, **kwargs: calls.append((name, *args)))
    return calls


def test_standings_are_refreshed_when_an_entrants_account_trades_new_bars(notified, sent):
    owner, agents = entrants()
    tournament = tournament_of(owner, agents)
    quiet = tournament_of(owner, agents, name="quiet")
    done = tournament_of(owner, agents, name="done")
    tournament_finish(done)
    assert sorted(refresh_stale_standings_task()) == sorted([tournament.pk, quiet.pk])  # no standings yet
    assert sent[0][0] == task_names.RECOMPUTE_STANDINGS
    for _name, pk in sent:
        recompute_standings_task(pk)
    sent.clear()
    assert standings_refresh_stale() == [] and sent == []  # nothing moved: nothing sent

    entry = tournament.entries.get(agent=agents[0])
    account = forward_record(agents[0], [0.001] * 5, after=entry.forward_from)
    # The account is an entrant's in both active tournaments: both are stale.
    assert sorted(standings_refresh_stale()) == sorted([tournament.pk, quiet.pk])
    standings_recompute(tournament.pk)
    standings_recompute(quiet.pk)
    assert standings_refresh_stale() == []
    PaperAccount.objects.filter(pk=account.pk).update(last_bar_timestamp=entry.forward_from + dt.timedelta(days=5))
    assert standings_refresh_stale(limit=1) == [tournament.pk]  # bounded: the stalest first
    assert sent[-1] == (task_names.RECOMPUTE_STANDINGS, tournament.pk)


def test_a_recompute_for_a_deleted_tournament_does_nothing(notified):
    owner, agents = entrants()
    tournament = tournament_of(owner, agents)
    pk = tournament.pk
    Tournament.objects.filter(pk=pk).delete()
    assert recompute_standings_task(pk) is None
