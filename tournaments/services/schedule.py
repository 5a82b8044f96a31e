"""A tournament's round schedule as a django-celery-beat row, written through the scheduling
service (agents.services.scheduling.beat_row_sync, the one writer of single beat rows).

The row is `tournament:<id>:round` (task tournaments.tasks.scheduled_round_task, args [id]):
outside the `agent:*:learn` names, so agents' schedules_reconcile neither fixes nor deletes it;
tournament_schedules_reconcile (beat, every 5 minutes) does. The tournament's columns are the
source of truth: an active tournament with a cron has the row, any other has none; each fire
also re-syncs it before acting.
"""

import logging

from django_celery_beat.models import PeriodicTask

from agents.services.scheduling import beat_row_remove, beat_row_sync, stored_schedule
from tournaments import task_names
from tournaments.models import Tournament, TournamentStatus

logger = logging.getLogger(__name__)

ROW_PREFIX, ROW_SUFFIX = "tournament:", ":round"

ROW_DESCRIPTION = (
    "Rounds of tournament {tournament_id}. Managed by the lab from the tournament's columns; "
    "edits made here are reverted at the next round."
)


def round_task_name(tournament_id):
    return f"{ROW_PREFIX}{tournament_id}{ROW_SUFFIX}"


def round_cron(tournament):
    """The tournament's parsed round cron, or None (no schedule, or the tournament is finished)."""
    if tournament.status != TournamentStatus.ACTIVE:
        return None
    return stored_schedule(tournament.round_schedule, tournament.schedule_timezone, f"tournament {tournament.pk}")


def tournament_schedule_sync(tournament):
    """Make the tournament's beat row match its columns; returns the row or None."""
    return beat_row_sync(round_task_name(tournament.pk), task=task_names.SCHEDULED_ROUND, row_id=tournament.pk,
                         parsed=round_cron(tournament), enabled=True,
                         description=ROW_DESCRIPTION.format(tournament_id=tournament.pk))


def tournament_schedule_remove(tournament_id):
    """Remove the tournament's beat row (a deleted tournament). True when there was one."""
    return beat_row_remove(round_task_name(tournament_id))


def tournament_schedules_reconcile():
    """Make every `tournament:<id>:round` beat row match its tournament's columns (beat runs this
    every 5 minutes, as agents' schedules_reconcile for `agent:*:learn`): recreates a row deleted by
    hand, reverts one edited by hand (beat_row_sync writes only what differs), removes rows whose
    tournament is gone, finished or unscheduled. Returns counts.
    """
    rows = {row.name: row.date_changed
            for row in PeriodicTask.objects.filter(name__startswith=ROW_PREFIX, name__endswith=ROW_SUFFIX)}
    summary = {"tournaments": 0, "created": 0, "updated": 0, "deleted": 0}
    wanted = set()
    scheduled = Tournament.objects.filter(status=TournamentStatus.ACTIVE).exclude(round_schedule="")
    for tournament in scheduled.only("pk", "status", "round_schedule", "schedule_timezone"):
        row = tournament_schedule_sync(tournament)
        if row is None:  # a stored cron that no longer parses: stored_schedule logged it
            continue
        summary["tournaments"] += 1
        wanted.add(row.name)
        if row.name not in rows:
            summary["created"] += 1
        elif row.date_changed != rows[row.name]:
            summary["updated"] += 1
    for name in set(rows) - wanted:
        summary["deleted"] += beat_row_remove(name)
    if summary["created"] or summary["updated"] or summary["deleted"]:
        logger.info("reconciled tournament round schedules: %s", summary)
    return summary
