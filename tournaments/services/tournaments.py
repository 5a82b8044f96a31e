"""Creating a tournament: its entrants, the common sealed window, its round schedule.

The common window. Every entrant is scored on the bars of its own instrument inside
[window_start, window_end], and that span must lie inside EVERY entrant's sealed test window
(agents.evaluation.protocol: the newest test_fraction of its bars at creation), so no entrant's
search ever selected on it. The default is the intersection of the entrants' sealed windows. A
window outside one entrant's sealed window, or holding fewer than MIN_WINDOW_BARS of an
entrant's bars, is refused naming the field and the entrant. Bars arriving later move each
agent's sealed window forward: the standings say, per entrant, whether the common window is
still inside its current sealed window ("still_sealed").
"""

import datetime as dt
import uuid

import numpy as np
from django.db import transaction

from agents.evaluation.protocol import EvaluationError, split_protocol
from agents.market.cache import load_bars
from agents.selectors import agents_visible_to
from agents.services.scheduling import parse_cron, zone_name
from core.errors import ValidationFailed
from graduation.trading.accounts import to_datetime, to_datetime64
from tournaments.models import Tournament, TournamentEntry, TournamentStatus
from tournaments.services.schedule import tournament_schedule_remove, tournament_schedule_sync

MIN_ENTRANTS = 2
MAX_ENTRANTS = 50
MIN_WINDOW_BARS = 20
NAME_MAX = 120


def sealed_span(agent):
    """(first, last) timestamps of the agent's sealed test window now, as aware datetimes."""
    bars = load_bars(agent.instrument_id)
    protocol = split_protocol(len(bars), test_fraction=agent.test_fraction, n_folds=agent.n_folds)
    return to_datetime(bars.timestamps[protocol.test.start]), to_datetime(bars.timestamps[-1])


def bars_inside(agent, start, end):
    """How many of the agent's bars lie in [start, end]."""
    ts = load_bars(agent.instrument_id).timestamps
    return int(np.searchsorted(ts, to_datetime64(end), side="right") - np.searchsorted(ts, to_datetime64(start)))


def _entrants(owner, agent_ids):
    if not isinstance(agent_ids, list | tuple) or not agent_ids:
        raise ValidationFailed({"agents": f"a list of {MIN_ENTRANTS} to {MAX_ENTRANTS} agent ids"})
    try:
        ids = list(dict.fromkeys(uuid.UUID(str(value)) for value in agent_ids))
    except ValueError:
        raise ValidationFailed({"agents": "every entrant must be an agent id (a UUID)"})
    if not MIN_ENTRANTS <= len(ids) <= MAX_ENTRANTS:
        raise ValidationFailed({"agents": f"a tournament needs {MIN_ENTRANTS} to {MAX_ENTRANTS} distinct agents, "
                                          f"got {len(ids)}"})
    found = {a.pk: a for a in agents_visible_to(owner).filter(pk__in=ids).select_related("instrument")}
    missing = [str(pk) for pk in ids if pk not in found]
    if missing:
        raise ValidationFailed({"agents": f"no agent of yours with id {', '.join(missing)}"})
    return [found[pk] for pk in ids]


def common_window(agents, window_start=None, window_end=None):
    """(start, end) of the common window, validated (see the module docstring)."""
    spans = {}
    for agent in agents:
        try:
            spans[agent.pk] = sealed_span(agent)
        except EvaluationError as exc:
            raise ValidationFailed({"agents": f"agent '{agent.name}' has no sealed test window: {exc}"})
    latest_start = max(spans.values(), key=lambda s: s[0])
    earliest_end = min(spans.values(), key=lambda s: s[1])
    owner_of_start = next(a for a in agents if spans[a.pk][0] == latest_start[0])
    owner_of_end = next(a for a in agents if spans[a.pk][1] == earliest_end[1])
    start = latest_start[0] if window_start is None else window_start
    end = earliest_end[1] if window_end is None else window_end
    errors = {}
    if start < latest_start[0]:
        errors["window_start"] = (f"must lie inside every entrant's sealed test window: on or after "
                                  f"{latest_start[0]:%Y-%m-%d %H:%M} UTC, where agent '{owner_of_start.name}'s "
                                  "sealed window starts (earlier bars are its selection data)")
    if end > earliest_end[1]:
        errors["window_end"] = (f"must lie inside every entrant's sealed test window: on or before "
                                f"{earliest_end[1]:%Y-%m-%d %H:%M} UTC, the last bar of agent '{owner_of_end.name}'")
    if not errors and start >= end:
        errors["window_end" if window_end is not None else "agents"] = (
            "the common window is empty: window_end must be after window_start" if window_end is not None
            else "the entrants' sealed test windows do not overlap; choose entrants whose sealed windows share bars ("
            + "; ".join(f"'{a.name}': {spans[a.pk][0]:%Y-%m-%d} .. {spans[a.pk][1]:%Y-%m-%d}" for a in agents) + ")")
    if not errors:
        for agent in agents:
            n = bars_inside(agent, start, end)
            if n < MIN_WINDOW_BARS:
                errors["window_start"] = (f"the common window holds {n} bars of agent '{agent.name}'; at least "
                                          f"{MIN_WINDOW_BARS} needed")
                break
    if errors:
        raise ValidationFailed(errors)
    return start, end


def _aware_or_error(name, value):
    if value is None:
        return None
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ValidationFailed({name: "an ISO 8601 date-time with a UTC offset"})
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00: before the first representable instant in UTC
        raise ValidationFailed({name: "out of range once converted to UTC"})


def tournament_create(owner, *, name, agent_ids, description="", window_start=None, window_end=None,
                      round_schedule="", schedule_timezone="UTC"):
    """Create a tournament over ``agent_ids`` (agents ``owner`` may see); nothing written on bad input.

    The standings are not computed here (a backtest per entrant): call standings_recompute after.
    """
    name = (name or "").strip()
    if not name or len(name) > NAME_MAX:
        raise ValidationFailed({"name": f"required, at most {NAME_MAX} characters"})
    if Tournament.objects.filter(owner=owner, name=name).exists():
        raise ValidationFailed({"name": f"you already have a tournament named '{name}'"})
    round_schedule = (round_schedule or "").strip()
    parsed = parse_cron(round_schedule, schedule_timezone or "UTC") if round_schedule else None
    agents = _entrants(owner, agent_ids)
    start, end = common_window(agents, _aware_or_error("window_start", window_start),
                               _aware_or_error("window_end", window_end))
    with transaction.atomic():
        tournament = Tournament.objects.create(
            name=name, owner=owner, description=description or "", window_start=start, window_end=end,
            round_schedule=parsed.expression if parsed else "",
            schedule_timezone=parsed.timezone if parsed else (schedule_timezone or "UTC"),
        )
        TournamentEntry.objects.bulk_create([
            TournamentEntry(tournament=tournament, agent=agent,
                            forward_from=newest_bar(agent)) for agent in agents
        ])
        tournament_schedule_sync(tournament)
    return tournament


def newest_bar(agent):
    bars = load_bars(agent.instrument_id)
    return to_datetime(bars.timestamps[-1]) if len(bars) else None


UNSET = object()


def tournament_update(tournament, *, name=UNSET, description=UNSET, round_schedule=UNSET, schedule_timezone=UNSET,
                      status=UNSET):
    """Change what may change after creation; every field is checked before anything is written.

    The name, the description, the round schedule (cron and zone: the beat row follows through
    tournament_schedule_sync) and the status, to `finished` only (tournament_finish; a finished
    tournament is not reopened: its rounds and standings are a closed record). Entrants change
    through tournaments.services.entrants; the common window never does (the entrants' scores are
    comparable because they are read on the same bars).
    """
    errors, changes = {}, {}
    if name is not UNSET:
        cleaned = (name or "").strip()
        if not cleaned or len(cleaned) > NAME_MAX:
            errors["name"] = f"required, at most {NAME_MAX} characters"
        elif Tournament.objects.filter(owner_id=tournament.owner_id, name=cleaned).exclude(pk=tournament.pk).exists():
            errors["name"] = f"you already have a tournament named '{cleaned}'"
        else:
            changes["name"] = cleaned
    if description is not UNSET:
        changes["description"] = description or ""
    if round_schedule is not UNSET or schedule_timezone is not UNSET:
        cron = (tournament.round_schedule if round_schedule is UNSET else (round_schedule or "")).strip()
        zone = (tournament.schedule_timezone if schedule_timezone is UNSET else schedule_timezone) or "UTC"
        try:
            parsed = parse_cron(cron, zone) if cron else None
            zone = parsed.timezone if parsed else zone_name(zone)
        except ValidationFailed as exc:
            errors.update({"round_schedule" if key == "cron" else "schedule_timezone" if key == "timezone" else key:
                           message for key, message in exc.errors.items()})
        else:
            changes["round_schedule"] = parsed.expression if parsed else ""
            changes["schedule_timezone"] = zone
    finish = False
    if status is not UNSET and status != tournament.status:
        if status == TournamentStatus.FINISHED:
            finish = True
        else:
            errors["status"] = (f"only '{TournamentStatus.FINISHED}' may be set: a finished tournament is not "
                                "reopened (create a new one)")
    if errors:
        raise ValidationFailed(errors)
    with transaction.atomic():
        for field, value in changes.items():
            setattr(tournament, field, value)
        if changes:
            tournament.save(update_fields=list(changes))
        if finish:
            tournament_finish(tournament)
        elif {"round_schedule", "schedule_timezone"} & set(changes):
            tournament_schedule_sync(tournament)
    return tournament


def tournament_delete(tournament):
    """Delete a tournament and its beat row (entries, rounds and standings go with it)."""
    with transaction.atomic():
        tournament_schedule_remove(tournament.pk)
        tournament.delete()


def tournament_finish(tournament):
    """Finish a tournament: no more rounds (its beat row goes); its standings stay readable."""
    with transaction.atomic():
        tournament.status = TournamentStatus.FINISHED
        tournament.save(update_fields=["status"])
        tournament_schedule_sync(tournament)
    return tournament
