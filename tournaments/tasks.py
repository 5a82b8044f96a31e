"""Celery tasks of tournaments: thin, idempotent, taking ids (names in tournaments/task_names.py).

Beat: one row per scheduled tournament, `tournament:<id>:round` (tournaments.services.schedule),
and two lab-wide entries (config/settings/celery.py): "reconcile-tournament-schedules" (every 5
minutes) and "refresh-tournament-standings" (every paper interval), which sends
recompute_standings_task for the tournaments whose entrants traded new bars.
"""

from celery import shared_task

from tournaments import task_names
from tournaments.models import Tournament
from tournaments.services.rounds import round_scheduled_fire
from tournaments.services.schedule import tournament_schedules_reconcile
from tournaments.services.standings import standings_recompute, standings_refresh_stale


@shared_task(name=task_names.SCHEDULED_ROUND, acks_late=True)
def scheduled_round_task(tournament_id):
    """A round per schedule slot (a redelivery of the same slot finds its round)."""
    round_ = round_scheduled_fire(int(tournament_id))
    return round_.pk if round_ is not None else None


@shared_task(name=task_names.RECOMPUTE_STANDINGS, acks_late=True)
def recompute_standings_task(tournament_id):
    """Recompute the standings (a snapshot rewritten whole: running it twice gives the same rows).
    A tournament deleted since the message was sent is nothing to do."""
    try:
        return standings_recompute(int(tournament_id)).pk
    except Tournament.DoesNotExist:
        return None


@shared_task(name=task_names.REFRESH_STALE_STANDINGS, ignore_result=True)
def refresh_stale_standings_task():
    """Every paper interval: standings follow the entrants' forward trading (a bounded batch)."""
    return standings_refresh_stale()


@shared_task(name=task_names.RECONCILE_SCHEDULES, acks_late=True)
def reconcile_schedules_task():
    """Every 5 minutes: tournament round rows back in line with the tournaments' columns."""
    return tournament_schedules_reconcile()
