"""Rounds (the beat row, the round task's idempotency, closing on the last iteration) and the alerts
a snapshot raises (a new leader once; a forward record significantly below its claim)."""

import datetime as dt
import json
import math

import numpy as np
import pytest
from django_celery_beat.models import PeriodicTask
from scipy import stats as sps

from agents.models import IterationStatus, IterationTrigger, LearningIteration
from agents.services.learning import iteration_run
from agents.services.scheduling import schedules_reconcile
from alerts.models import AgentAlert, AlertType, Severity
from tests.tournaments.helpers import entrants, forward_record, tournament_of
from tournaments import task_names
from tournaments.models import TournamentRound, TournamentStanding
from tournaments.services.rounds import round_start
from tournaments.services.standings import standings_recompute
from tournaments.services.tournaments import tournament_delete, tournament_finish
from tournaments.tasks import recompute_standings_task, scheduled_round_task

pytestmark = pytest.mark.django_db
NINE = dt.datetime(2026, 3, 2, 9, 0, 10, tzinfo=dt.UTC)


def test_a_scheduled_tournament_has_a_beat_row_that_reconcile_keeps_and_finishing_removes():
    owner, agents = entrants()
    tournament = tournament_of(owner, agents, round_schedule="0 9 * * 1-5", schedule_timezone="Europe/Paris")
    row = PeriodicTask.objects.get(name=f"tournament:{tournament.pk}:round")
    assert row.task == task_names.SCHEDULED_ROUND and json.loads(row.args) == [str(tournament.pk)]
    assert (row.crontab.hour, row.crontab.day_of_week, str(row.crontab.timezone)) == ("9", "1-5", "Europe/Paris")
    assert row.enabled
    schedules_reconcile()
    assert PeriodicTask.objects.filter(name=row.name).exists()
    tournament_finish(tournament)
    assert not PeriodicTask.objects.filter(name=row.name).exists()
    assert scheduled_round_task(tournament.pk) is None  # finished: no round


def test_deleting_a_scheduled_tournament_removes_its_beat_row_and_a_stale_fire_does_nothing():
    owner, agents = entrants()
    tournament = tournament_of(owner, agents, round_schedule="*/5 * * * *")
    name, pk = f"tournament:{tournament.pk}:round", tournament.pk
    tournament_delete(tournament)
    assert not PeriodicTask.objects.filter(name=name).exists()
    assert scheduled_round_task(pk) is None and not LearningIteration.objects.exists()


def test_an_unscheduled_tournament_has_no_beat_row():
    owner, agents = entrants()
    tournament = tournament_of(owner, agents)
    assert not PeriodicTask.objects.filter(name=f"tournament:{tournament.pk}:round").exists()


def test_the_round_task_is_idempotent_and_the_last_iteration_closes_the_round(
        clock, notified, django_capture_on_commit_callbacks):
    owner, agents = entrants()
    tournament = tournament_of(owner, agents, round_schedule="0 9 * * *")
    clock(NINE)
    first = scheduled_round_task(tournament.pk)
    assert scheduled_round_task(tournament.pk) == first  # a redelivery of the same slot
    round_ = TournamentRound.objects.get()
    assert (round_.number, round_.key, round_.trigger) == (1, "schedule:2026-03-02T09:00Z", IterationTrigger.SCHEDULE)
    iterations = list(LearningIteration.objects.order_by("pk"))
    assert len(iterations) == 3 and sorted(round_.iteration_ids) == [i.pk for i in iterations]
    assert {i.idempotency_key for i in iterations} == {f"tournament:{tournament.pk}:round:1"}
    for iteration in iterations[:-1]:
        with django_capture_on_commit_callbacks(execute=True):
            iteration_run(iteration.pk)
    round_.refresh_from_db()
    assert round_.finished_at is None and not TournamentStanding.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        iteration_run(iterations[-1].pk)
    round_.refresh_from_db()
    tournament.refresh_from_db()
    assert round_.finished_at is not None
    assert LearningIteration.objects.filter(status=IterationStatus.SUCCEEDED).count() == 3
    assert TournamentStanding.objects.filter(tournament=tournament).count() == 3
    assert tournament.rounds_run == 1 and tournament.standings_at is not None
    # The next slot is a new round; a manual round while one is open returns the open one.
    clock(NINE + dt.timedelta(days=1))
    second, created = round_start(tournament, key=None)
    assert created and second.number == 2
    assert round_start(tournament)[0] == second


def reference_psr(returns, benchmark):
    t = len(returns)
    sr = returns.mean() / returns.std(ddof=1)
    g3, g4 = sps.skew(returns, bias=True), sps.kurtosis(returns, fisher=False, bias=True)
    return sps.norm.cdf((sr - benchmark) * math.sqrt(t - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr * sr))


def test_a_new_leader_raises_one_milestone_and_a_forward_collapse_a_warning(notified):
    owner, agents = entrants()
    tournament = tournament_of(owner, agents)
    standings_recompute(tournament.pk)
    recompute_standings_task(tournament.pk)  # same leader: nothing new
    milestones = AgentAlert.objects.filter(alert_type=AlertType.MILESTONE)
    leader = TournamentStanding.objects.get(tournament=tournament, rank=1)
    assert milestones.count() == 1 and milestones.get().agent_id == leader.agent_id
    assert milestones.get().fingerprint == f"tournament:{tournament.pk}:leader"

    # The last entrant's forward record is excellent: it takes the lead, one more milestone.
    last = TournamentStanding.objects.get(tournament=tournament, rank=3).agent
    entry = tournament.entries.get(agent=last)
    forward_record(last, np.random.default_rng(1).normal(0.01, 0.005, 40), after=entry.forward_from)
    standings_recompute(tournament.pk)
    assert TournamentStanding.objects.get(tournament=tournament, rank=1).agent_id == last.pk
    assert milestones.count() == 2 and milestones.filter(agent=last).exists()
    assert not AgentAlert.objects.filter(alert_type=AlertType.PERFORMANCE_DEGRADATION).exists()

    # The runner-up's forward record collapses: significantly below its common-window claim.
    row = TournamentStanding.objects.get(tournament=tournament, rank=2)
    entry = tournament.entries.get(agent=row.agent)
    forward = np.random.default_rng(2).normal(-0.01, 0.01, 30)
    forward_record(row.agent, forward, after=entry.forward_from)
    standings_recompute(tournament.pk)
    degraded = AgentAlert.objects.get(alert_type=AlertType.PERFORMANCE_DEGRADATION)
    assert degraded.agent_id == row.agent_id and degraded.severity == Severity.WARNING
    assert degraded.details["psr"] == pytest.approx(reference_psr(forward, row.window["sharpe"]), rel=1e-6)
    assert degraded.details["psr"] <= 0.01
    row.agent.refresh_from_db()
    assert row.agent.status == "learning"  # a WARNING demotes nobody


def test_a_short_forward_record_raises_no_degradation(notified):
    owner, agents = entrants()
    tournament = tournament_of(owner, agents)
    entry = tournament.entries.get(agent=agents[0])
    forward_record(agents[0], np.full(10, -0.02), after=entry.forward_from)
    standings_recompute(tournament.pk)
    assert not AgentAlert.objects.filter(alert_type=AlertType.PERFORMANCE_DEGRADATION).exists()
