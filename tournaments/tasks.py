"""Celery tasks of tournaments: thin, idempotent, taking ids (names in tournaments/task_names.py).

Beat: one row per scheduled tournament, `tournament:<id>:round` (tournaments.services.schedule).
"""

from celery import shared_task

from tournaments import task_names
from tournaments.services.rounds import round_scheduled_fire
from tournaments.services.standings import standings_recompute


@shared_task(name=task_names.SCHEDULED_ROUND, acks_late=True)
def scheduled_round_task(tournament_id):
    """A round per schedule slot (a redelivery of the same slot finds its round)."""
    round_ = round_scheduled_fire(int(tournament_id))
    return round_.pk if round_ is not None else None


@shared_task(name=task_names.RECOMPUTE_STANDINGS, acks_late=True)
def recompute_standings_task(tournament_id):
    """Recompute the standings (a snapshot rewritten whole: running it twice gives the same rows)."""
    return standings_recompute(int(tournament_id)).pk
