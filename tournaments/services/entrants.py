"""Adding and removing a tournament's entrants after creation.

The common window is fixed at creation, so an agent may join only if that window lies inside its
own sealed test window now (the rule tournament_create applies, tournaments.services.tournaments)
and holds at least MIN_WINDOW_BARS of its bars: otherwise its search may have selected on the
bars it would be ranked on. A newcomer's forward record starts at the newest bar of its
instrument when it joins (TournamentEntry.forward_from), as at creation.

A tournament keeps at least MIN_ENTRANTS entrants (a ranking of one compares nothing: finish or
delete it instead). A finished tournament's entrants are a closed record and do not change.

The standings are recomputed after the change commits (a backtest per entrant runs then, outside
the write transaction); a removed entrant's row goes in the write itself, so no reader sees it
ranked in between. A removed entrant leaves the open rounds too, so a round never waits on an
iteration whose agent is no longer in the tournament.
"""

import uuid

from django.db import IntegrityError, transaction

from agents.evaluation.protocol import EvaluationError
from agents.selectors import agents_visible_to
from core.errors import Conflict, NotFound, ValidationFailed
from tournaments.models import Tournament, TournamentEntry, TournamentRound, TournamentStanding, TournamentStatus
from tournaments.services.rounds import round_finish_if_done
from tournaments.services.standings import standings_recompute
from tournaments.services.tournaments import (
    MAX_ENTRANTS,
    MIN_ENTRANTS,
    MIN_WINDOW_BARS,
    bars_inside,
    newest_bar,
    sealed_span,
)

WINDOW_RULE = "the tournament's fixed common window must lie inside each entrant's sealed test window"


def _still_open(tournament):
    if tournament.status != TournamentStatus.ACTIVE:
        raise Conflict({"status": f"the tournament is {tournament.status}: its entrants no longer change"})


def window_refusal(agent, start, end):
    """Why ``agent`` may not be ranked on [start, end] (the module docstring's rule), or None."""
    try:
        sealed_start, sealed_end = sealed_span(agent)
    except EvaluationError as exc:
        return f"agent '{agent.name}' has no sealed test window: {exc}"
    if start < sealed_start or end > sealed_end:
        return (f"agent '{agent.name}': {WINDOW_RULE}, {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC; its sealed "
                f"window is {sealed_start:%Y-%m-%d %H:%M} .. {sealed_end:%Y-%m-%d %H:%M} UTC (earlier bars are its "
                "selection data)")
    n = bars_inside(agent, start, end)
    if n < MIN_WINDOW_BARS:
        return f"agent '{agent.name}': the common window holds {n} of its bars; at least {MIN_WINDOW_BARS} needed"
    return None


def _newcomers(tournament, user, agent_ids):
    if not isinstance(agent_ids, list | tuple) or not agent_ids:
        raise ValidationFailed({"agent_ids": "a non-empty list of agent ids"})
    try:
        ids = list(dict.fromkeys(uuid.UUID(str(value)) for value in agent_ids))
    except ValueError:
        raise ValidationFailed({"agent_ids": "every entrant must be an agent id (a UUID)"})
    found = {a.pk: a for a in agents_visible_to(user).filter(pk__in=ids).select_related("instrument")}
    missing = [str(pk) for pk in ids if pk not in found]
    if missing:
        raise ValidationFailed({"agent_ids": f"no agent of yours with id {', '.join(missing)}"})
    already = set(tournament.entries.filter(agent_id__in=ids).values_list("agent_id", flat=True))
    if already:
        names = ", ".join(f"'{found[pk].name}'" for pk in ids if pk in already)
        raise ValidationFailed({"agent_ids": f"already an entrant: {names}"})
    count = tournament.entries.count()
    if count + len(ids) > MAX_ENTRANTS:
        raise ValidationFailed({"agent_ids": f"a tournament has at most {MAX_ENTRANTS} entrants; it has {count}, "
                                             f"{len(ids)} more would make {count + len(ids)}"})
    refusals = [reason for agent in found.values()
                if (reason := window_refusal(agent, tournament.window_start, tournament.window_end))]
    if refusals:
        raise ValidationFailed({"agent_ids": "; ".join(refusals)})
    return [found[pk] for pk in ids]


def tournament_entrants_add(tournament, *, agent_ids, user):
    """Add agents ``user`` may see as entrants (all or none), then recompute the standings.

    Returns the tournament with its new standings.
    """
    _still_open(tournament)
    agents = _newcomers(tournament, user, agent_ids)
    try:
        with transaction.atomic():
            locked = Tournament.objects.select_for_update().get(pk=tournament.pk)
            _still_open(locked)
            if locked.entries.count() + len(agents) > MAX_ENTRANTS:  # a concurrent add took the places
                raise ValidationFailed({"agent_ids": f"a tournament has at most {MAX_ENTRANTS} entrants"})
            TournamentEntry.objects.bulk_create([
                TournamentEntry(tournament=locked, agent=agent, forward_from=newest_bar(agent)) for agent in agents
            ])
    except IntegrityError:  # a concurrent add of the same agent won the unique (tournament, agent)
        raise ValidationFailed({"agent_ids": "already an entrant (added meanwhile)"})
    return standings_recompute(tournament.pk)


def tournament_entrant_remove(tournament, *, agent_id):
    """Remove one entrant (never below MIN_ENTRANTS), then recompute the standings.

    Returns the tournament with its new standings.
    """
    _still_open(tournament)
    try:
        agent_id = uuid.UUID(str(agent_id))
    except ValueError:
        raise ValidationFailed({"agent_id": "an agent id (a UUID)"})
    with transaction.atomic():
        locked = Tournament.objects.select_for_update().get(pk=tournament.pk)
        _still_open(locked)
        entry = locked.entries.filter(agent_id=agent_id).select_related("agent").first()
        if entry is None:
            raise NotFound({"agent_id": f"agent {agent_id} is not an entrant of this tournament"})
        count = locked.entries.count()
        if count <= MIN_ENTRANTS:
            raise Conflict({"agent_id": f"a tournament keeps at least {MIN_ENTRANTS} entrants and this one has "
                                        f"{count}: removing '{entry.agent.name}' would leave a ranking of one; "
                                        "finish or delete the tournament instead"})
        iterations = set(entry.agent.iterations.values_list("pk", flat=True))
        open_rounds = list(TournamentRound.objects.filter(tournament=locked, finished_at__isnull=True))
        for round_ in open_rounds:
            round_.iteration_ids = [pk for pk in round_.iteration_ids if pk not in iterations]
            round_.save(update_fields=["iteration_ids"])
        TournamentStanding.objects.filter(tournament=locked, agent_id=agent_id).delete()
        if locked.leader_id == agent_id:
            locked.leader = None  # until the recomputation below names the new one
            locked.save(update_fields=["leader"])
        entry.delete()
    for round_ in open_rounds:
        round_finish_if_done(round_.pk)  # the removed entrant may have been the one it waited for
    return standings_recompute(tournament.pk)
