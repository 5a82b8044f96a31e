"""A tournament's round schedule as a django-celery-beat row, written through the scheduling
service (agents.services.scheduling.beat_row_sync, the one writer of single beat rows).

The row is `tournament:<id>:round` (task tournaments.tasks.scheduled_round_task, args [id]):
outside the `agent:*:learn` names, so schedules_reconcile neither fixes nor deletes it. The
tournament's columns are the source of truth: an active tournament with a cron has the row, any
other has none; each fire re-syncs it (heals a row edited by hand) before acting.
"""

from agents.services.scheduling import beat_row_remove, beat_row_sync, stored_schedule
from tournaments import task_names
from tournaments.models import TournamentStatus

ROW_DESCRIPTION = (
    "Rounds of tournament {tournament_id}. Managed by the lab from the tournament's columns; "
    "edits made here are reverted at the next round."
)


def round_task_name(tournament_id):
    return f"tournament:{tournament_id}:round"


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
