"""Rounds: each entrant learns one iteration, then the standings are recomputed.

A round queues one iteration per entrant through agents' dispatch (idempotency key
`tournament:<id>:round:<n>`, so a redelivered task makes no second iteration; an entrant already
learning joins the round with its active iteration) and records their ids. When the last of them
finishes (agents' iteration_finished, received in tournaments.receivers) the round is closed by a
conditional update, so exactly one receiver recomputes the standings.

Idempotency: a round has a key, unique per tournament: `schedule:<slot UTC>` for a beat fire (the
slot rule of agents.services.scheduling: the cron's latest fire at or before now + SLOT_SKEW) and
`manual:<n>` on demand. A round still open when another is asked for is returned instead (a
round at a time: the entrants' iterations would join the open round's anyway).

Triggers reused from agents: SCHEDULE for a beat fire, API for a round on demand.
"""

import datetime as dt
import logging

from django.db import IntegrityError, transaction
from django.utils import timezone as djtz

from agents.models import IterationStatus, IterationTrigger, LearningIteration
from agents.services.dispatch import iteration_start
from agents.services.scheduling import SLOT_SKEW, beat_row_remove, last_fire_at_or_before
from core.errors import Conflict
from tournaments.models import Tournament, TournamentRound, TournamentStatus
from tournaments.services.schedule import round_cron, round_task_name, tournament_schedule_sync
from tournaments.services.standings import standings_recompute

logger = logging.getLogger(__name__)

FINISHED_STATUSES = (IterationStatus.SUCCEEDED, IterationStatus.FAILED)


def round_start(tournament, *, trigger=IterationTrigger.API, key=None, requested_by=None):
    """Start a round (returns (round, created)); the open round, or the round of ``key``, if any."""
    if tournament.status != TournamentStatus.ACTIVE:
        raise Conflict({"status": f"the tournament is {tournament.status}: no more rounds"})
    for _attempt in range(2):
        try:
            with transaction.atomic():
                locked = Tournament.objects.select_for_update().get(pk=tournament.pk)
                existing = _existing(locked, key)
                if existing is not None:
                    return existing, False
                number = locked.rounds_run + 1
                round_ = TournamentRound.objects.create(
                    tournament=locked, number=number, key=key or f"manual:{number}", trigger=trigger)
                ids = []
                for entry in locked.entries.select_related("agent", "agent__instrument"):
                    iteration, _created = iteration_start(
                        entry.agent, trigger=trigger, requested_by=requested_by,
                        idempotency_key=f"tournament:{locked.pk}:round:{number}")
                    ids.append(iteration.pk)
                round_.iteration_ids = ids
                round_.save(update_fields=["iteration_ids"])
                Tournament.objects.filter(pk=locked.pk).update(rounds_run=number)
                tournament.rounds_run = number
        except IntegrityError:
            continue  # a concurrent fire of the same slot won: the next pass returns its round
        round_finish_if_done(round_.pk)  # entrants that joined with an iteration already over
        round_.refresh_from_db()
        return round_, True
    return _existing(tournament, key), False


def _existing(tournament, key):
    if key:
        found = TournamentRound.objects.filter(tournament=tournament, key=key).first()
        if found is not None:
            return found
    return TournamentRound.objects.filter(tournament=tournament, finished_at__isnull=True).first()


def round_scheduled_fire(tournament_id, now=None):
    """What beat's task calls: the slot's round once (None when the tournament is gone, finished or
    unscheduled; its beat row is then removed)."""
    now = now or djtz.now()
    tournament = Tournament.objects.filter(pk=tournament_id).first()
    if tournament is None:
        beat_row_remove(round_task_name(tournament_id))
        return None
    tournament_schedule_sync(tournament)
    parsed = round_cron(tournament)
    if parsed is None:
        return None
    slot = last_fire_at_or_before(parsed, moment=now + SLOT_SKEW) or now.replace(second=0, microsecond=0)
    key = f"schedule:{slot.astimezone(dt.UTC):%Y-%m-%dT%H:%MZ}"
    round_, _created = round_start(tournament, trigger=IterationTrigger.SCHEDULE, key=key)
    return round_


def round_finish_if_done(round_id):
    """Close the round when every one of its iterations has finished, then recompute the standings.
    True when this call closed it (a conditional update: one caller wins)."""
    round_ = TournamentRound.objects.filter(pk=round_id, finished_at__isnull=True).first()
    if round_ is None:
        return False
    pending = LearningIteration.objects.filter(pk__in=round_.iteration_ids).exclude(
        status__in=FINISHED_STATUSES).exists()
    if pending:
        return False
    closed = TournamentRound.objects.filter(pk=round_id, finished_at__isnull=True).update(finished_at=djtz.now())
    if closed:
        standings_recompute(round_.tournament_id)
    return bool(closed)


def rounds_after_iteration(agent_id, iteration_id):
    """An entrant's iteration finished: close the open rounds it belonged to that are now done."""
    closed = 0
    for round_ in TournamentRound.objects.filter(finished_at__isnull=True, tournament__entries__agent_id=agent_id):
        if iteration_id in (round_.iteration_ids or []):
            closed += round_finish_if_done(round_.pk)
    return closed
