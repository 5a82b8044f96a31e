"""Scheduled iterations: an agent's learning cron, its django-celery-beat row, and each fire.

The agent's columns are the source of truth: `auto_learn_enabled`, `learning_schedule` (a
five-field cron) and `schedule_timezone` (an IANA name, default UTC). The beat row derived from
them is a `PeriodicTask` named `agent:<id>:learn` on a `CrontabSchedule` shared by every agent
with the same cron and zone. This module is the only code that writes those rows;
`reconcile_schedules` (beat, every 5 minutes) puts back whatever was edited by hand in
django-celery-beat's admin, and each fire re-syncs its own row first.

Cron syntax and meaning are Celery's, which runs them: minute hour day_of_month month_of_year
day_of_week; `*`, numbers, ranges `a-b`, lists `a,b`, steps `*/n` or `a-b/n`; months 1-12 or
jan-dec, weekdays 0-6 with 0 = Sunday or sun-sat; @hourly, @daily, @weekly, @monthly and
@yearly are expanded. When both day_of_month and day_of_week are restricted, a day must match
both (Celery), not either (Vixie cron). Times are wall-clock times in the agent's zone: a time
skipped by a spring-forward change fires one hour later on the wall clock (01:30 in London on
the last Sunday of March fires at 02:30 BST = 01:30 UTC), and a time repeated by the autumn
change fires once, at its first occurrence.

`next_scheduled_iteration` is the next fire time (UTC) while auto-learn is on and None while it
is off; it is recomputed on every change and after each scheduled run.

Slot rule (idempotency): a fire belongs to the latest fire time of the agent's cron at or
before now + SLOT_SKEW (which absorbs clock skew between the beat host and the worker). The
iteration is queued with idempotency key `schedule:<slot UTC, to the minute>`, e.g.
`schedule:2025-01-06T09:00Z`; the key is unique per agent in the database, so two beat
processes, a redelivered message or a late duplicate firing the same slot produce one iteration.
"""

import dataclasses
import datetime as dt
import functools
import json
import logging
import re
import uuid
import zoneinfo

from celery.schedules import ParseException, crontab_parser
from cron_descriptor import ExpressionDescriptor, FormatException, MissingFieldException, WrongArgumentException
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection, transaction
from django.utils import timezone as djtz
from django_celery_beat import validators as beat_validators
from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks
from django_celery_beat.tzcrontab import TzAwareCrontab

from agents.models import ActivityLog, IterationTrigger, TradingAgent
from agents.services.activity import actor_label_for, log_activity
from agents.services.errors import ValidationFailed

logger = logging.getLogger(__name__)

TASK = "agents.tasks.scheduled_iteration_task"
QUEUE = "default"
ROW_DESCRIPTION = (
    "Learning schedule of agent {agent_id}. Managed by the lab from the agent's columns: change it "
    "through the API or the agent's admin page; edits made here are reverted by reconcile_schedules."
)
SLOT_SKEW = dt.timedelta(seconds=30)
# A fire due this recently may still be on its way; reconcile leaves its next time alone.
FIRE_GRACE = dt.timedelta(minutes=5)
BATCH = 500
MAX_CRON_LENGTH = 120
MAX_TIMEZONE_LENGTH = 64

MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
MONTHS = {name: i for i, name in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}
WEEKDAYS = {name: i for i, name in enumerate("sun mon tue wed thu fri sat".split())}


class _Field:
    def __init__(self, position, name, low, high, names=None, hint=""):
        self.position, self.name, self.low, self.high = position, name, low, high
        self.names = names or {}
        self.hint = hint

    def label(self, text):
        return f"field {self.position} ({self.name}) '{text}'"


FIELDS = (
    _Field(1, "minute", 0, 59),
    _Field(2, "hour", 0, 23),
    _Field(3, "day_of_month", 1, 31),
    _Field(4, "month_of_year", 1, 12, MONTHS, " (or jan-dec)"),
    _Field(5, "day_of_week", 0, 6, WEEKDAYS, " (0 = Sunday, or sun-sat)"),
)
FIELD_NAMES = " ".join(f.name for f in FIELDS)
_PART = re.compile(r"^(?:(\*)|([0-9a-z]+)(?:-([0-9a-z]+))?)(?:/([0-9a-z]*))?$")


@dataclasses.dataclass(frozen=True)
class ParsedCron:
    """A validated cron in normal form (lower case, single spaces) and its zone name."""

    minute: str
    hour: str
    day_of_month: str
    month_of_year: str
    day_of_week: str
    timezone: str = "UTC"

    @property
    def fields(self):
        return (self.minute, self.hour, self.day_of_month, self.month_of_year, self.day_of_week)

    @property
    def expression(self):
        return " ".join(self.fields)

    @property
    def zone(self):
        return zoneinfo.ZoneInfo(self.timezone)

    @property
    def crontab_key(self):
        return (*self.fields, self.timezone)

    def crontab_values(self):
        return {
            "minute": self.minute, "hour": self.hour, "day_of_month": self.day_of_month,
            "month_of_year": self.month_of_year, "day_of_week": self.day_of_week, "timezone": self.zone,
        }

    def __str__(self):
        return f"{self.expression} ({self.timezone})"


# --- parsing and time arithmetic ------------------------------------------------------------
def parse_cron(cron, timezone="UTC"):
    """Validate a five-field cron and a zone name; ValidationFailed names the field and the rule."""
    errors = {}
    fields = None
    zone = None
    try:
        fields = _parse_expression(cron)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    try:
        zone = _zone_name(timezone)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    if errors:
        raise ValidationFailed(errors)
    return ParsedCron(*fields, timezone=zone)


def describe_cron(cron):
    """Human-readable text of a cron, e.g. 'At 09:00, Monday through Friday'."""
    if not (cron or "").strip():
        return ""
    expression = " ".join(_parse_expression(cron))
    try:
        return ExpressionDescriptor(expression, use_24hour_time_format=True).get_description()
    except (FormatException, MissingFieldException, WrongArgumentException):
        return expression


def next_fire_time(cron, timezone="UTC", after=None):
    """Aware UTC datetime of the cron's next fire strictly after `after` (default now)."""
    parsed = cron if isinstance(cron, ParsedCron) else parse_cron(cron, timezone)
    return _next_after(parsed, _aware(after or djtz.now()))


def last_fire_at_or_before(cron, timezone="UTC", moment=None):
    """Aware UTC datetime of the cron's latest fire at or before `moment`, or None (30 years)."""
    parsed = cron if isinstance(cron, ParsedCron) else parse_cron(cron, timezone)
    moment = _aware(moment or djtz.now())
    # Look back in growing windows so a frequent cron needs few steps and a rare one is found.
    for lookback in (dt.timedelta(minutes=2), dt.timedelta(hours=2), dt.timedelta(days=2),
                     dt.timedelta(days=35), dt.timedelta(days=400), dt.timedelta(days=366 * 30)):
        fire = _next_after(parsed, moment - lookback)
        if fire <= moment:
            while (following := _next_after(parsed, fire)) <= moment:
                fire = following
            return fire
    return None


def _aware(value):
    return value.replace(tzinfo=dt.UTC) if djtz.is_naive(value) else value


def _next_after(parsed, after):
    schedule = _celery_schedule(parsed)
    zone = schedule.tz
    moment = after
    # Celery's own arithmetic (what beat runs): wall-clock fields replaced in the cron's zone.
    for _attempt in range(4):
        start, delta, _now = schedule.remaining_delta(moment.astimezone(zone), tz=zone)
        fire = (start + delta).astimezone(dt.UTC)
        if fire > after:
            return fire
        moment = max(fire, moment) + dt.timedelta(minutes=1)
    raise RuntimeError(f"no fire time after {after} for {parsed}")


@functools.lru_cache(maxsize=512)
def _celery_schedule(parsed):
    return TzAwareCrontab(
        minute=parsed.minute, hour=parsed.hour, day_of_month=parsed.day_of_month,
        month_of_year=parsed.month_of_year, day_of_week=parsed.day_of_week, tz=parsed.zone,
    )


@functools.lru_cache(maxsize=1)
def _zone_names():
    names = {name.lower(): name for name in zoneinfo.available_timezones()}
    names.setdefault("utc", "UTC")
    return names


def _zone_name(timezone):
    if not isinstance(timezone, str) or not timezone.strip():
        raise ValidationFailed({"timezone": "must be a time zone name such as 'UTC' or 'Europe/London'"})
    name = _zone_names().get(timezone.strip().lower()) if len(timezone) <= MAX_TIMEZONE_LENGTH else None
    if name is None:
        raise ValidationFailed({"timezone": f"unknown time zone '{timezone}'"})
    return name


def _parse_expression(cron):
    if not isinstance(cron, str):
        raise ValidationFailed({"cron": f"must be a string of five fields ({FIELD_NAMES})"})
    return _parse_text(cron)


@functools.lru_cache(maxsize=1024)
def _parse_text(cron):
    written = cron.split()
    if not written:
        raise ValidationFailed({"cron": f"must not be blank: five fields ({FIELD_NAMES}), e.g. '0 */6 * * *'"})
    if len(cron) > MAX_CRON_LENGTH:
        raise ValidationFailed({"cron": f"must be at most {MAX_CRON_LENGTH} characters"})
    if len(written) == 1 and written[0].startswith("@"):
        if written[0].lower() not in MACROS:
            raise ValidationFailed({"cron": f"unknown macro '{written[0]}'; use one of {', '.join(MACROS)}"})
        written = MACROS[written[0].lower()].split()
    if len(written) != len(FIELDS):
        raise ValidationFailed(
            {"cron": f"expected five fields ({FIELD_NAMES}) separated by spaces, got {len(written)}"}
        )
    parts = [value.lower() for value in written]
    for field, value, shown in zip(FIELDS, parts, written, strict=True):
        problem = _field_problem(field, value)
        if problem:
            raise ValidationFailed({"cron": f"{field.label(shown)} {problem}"})
    _check_fires(parts)
    return tuple(parts)


def _field_problem(field, text):
    """Our syntax and range rules first (they name the rule), then Celery's and beat's parsers."""
    for part in text.split(","):
        if not part:
            return "has an empty item in its list"
        match = _PART.match(part)
        if match is None:
            return (f"is not valid cron syntax: use *, a number{field.hint}, a range a-b, a list a,b "
                    f"or a step */n")
        _star, first, last, step = match.groups()
        values = []
        for token in (first, last):
            if token is None:
                continue
            value, problem = _token_value(field, token, whole=token == text)
            if problem:
                return problem
            values.append(value)
        if len(values) == 2 and values[0] > values[1]:
            return f"has a range {first}-{last} that runs backwards (split it, e.g. 22-23,0-2)"
        if step is not None:
            if not step.isdigit():
                return f"has a step '/{step}' that is not a whole number"
            if not 1 <= int(step) <= field.high:
                return f"has a step /{int(step)} outside 1-{field.high}"
    try:
        crontab_parser(field.high - field.low + 1, field.low).parse(text)
    except (ParseException, ValueError) as exc:
        return f"is not accepted by the scheduler: {exc}"
    try:
        getattr(beat_validators, f"{field.name}_validator")(text)
    except DjangoValidationError as exc:
        return f"is not accepted by the scheduler: {'; '.join(exc.messages)}"
    return None


def _token_value(field, token, *, whole):
    out_of_range = f"out of range {field.low}-{field.high}{field.hint}"
    if token.isdigit():
        value = int(token)
        if field.low <= value <= field.high:
            return value, None
        return None, f"is {out_of_range}" if whole else f"has {value} {out_of_range}"
    if token in field.names:
        return field.names[token], None
    subject = "is" if whole else f"has '{token}' which is"
    if field.names:
        return None, f"{subject} neither a number nor a name{field.hint}"
    return None, f"{subject} not a number"


def _check_fires(parts):
    """Refuse a cron that can never fire (day 30 of February): beat would spin on it."""
    try:
        _next_after(ParsedCron(*parts), dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    except (RuntimeError, ValueError):
        dom, moy = FIELDS[2], FIELDS[3]
        raise ValidationFailed(
            {"cron": f"{dom.label(parts[2])} never occurs in {moy.label(parts[3])}: the schedule would never fire"}
        )


# --- beat rows -------------------------------------------------------------------------------
def periodic_task_name(agent_id):
    return f"agent:{agent_id}:learn"


def _desired_row(agent_id, crontab, enabled):
    """Every PeriodicTask column an operator could change, with the value the agent implies."""
    return {
        "task": TASK, "args": json.dumps([str(agent_id)]), "kwargs": "{}",
        "crontab": crontab, "interval": None, "solar": None, "clocked": None,
        "enabled": bool(enabled), "one_off": False, "start_time": None, "expires": None, "expire_seconds": None,
        "queue": QUEUE, "exchange": None, "routing_key": None, "headers": "{}", "priority": None,
        "description": ROW_DESCRIPTION.format(agent_id=agent_id),
    }


ROW_FIELDS = list(_desired_row("x", None, True))


def _crontab_key(row):
    return (row.minute, row.hour, row.day_of_month, row.month_of_year, row.day_of_week, str(row.timezone))


def _row_differences(row, desired, parsed):
    diff = set()
    for field, value in desired.items():
        if field == "crontab":
            if row.crontab_id is None or _crontab_key(row.crontab) != parsed.crontab_key:
                diff.add(field)
        elif getattr(row, field) != value:
            diff.add(field)
    return diff


def _crontab_for(parsed):
    values = parsed.crontab_values()
    try:
        return CrontabSchedule.objects.get_or_create(**values)[0]
    except CrontabSchedule.MultipleObjectsReturned:
        # No unique constraint on the table: two racing creators may have made twins; use the first.
        return CrontabSchedule.objects.filter(**values).order_by("pk").first()


def _stored_schedule(agent_learning_schedule, agent_timezone, agent_id=None):
    if not agent_learning_schedule:
        return None
    try:
        return parse_cron(agent_learning_schedule, agent_timezone or "UTC")
    except ValidationFailed as exc:
        logger.warning("agent %s has an invalid stored schedule, not scheduling it: %s", agent_id, exc)
        return None


def sync_agent_schedule(agent):
    """Make the agent's beat row match its columns; the only writer of one agent's row.

    A schedule gives a row (enabled as auto-learn is); no schedule removes it. Writes only when
    something differs, so beat reloads only on real changes (PeriodicTask.save bumps
    PeriodicTasks). Returns the row or None.
    """
    name = periodic_task_name(agent.pk)
    parsed = _stored_schedule(agent.learning_schedule, agent.schedule_timezone, agent.pk)
    if parsed is None:
        PeriodicTask.objects.filter(name=name).delete()  # per-row delete: its signal bumps beat
        return None
    desired = _desired_row(agent.pk, _crontab_for(parsed), agent.auto_learn_enabled)
    row = PeriodicTask.objects.select_related("crontab").filter(name=name).first()
    diff = _row_differences(row, desired, parsed) if row is not None else set(desired)
    if not diff:
        return row
    if {"crontab", "enabled"} & diff:
        # Beat counts from last_run_at, else from date_changed (now): a stale last run under
        # the old schedule would make it fire at once.
        desired["last_run_at"] = None
    row, _created = PeriodicTask.objects.update_or_create(name=name, defaults=desired)
    return row


def unschedule_agent(agent_id):
    """Remove an agent's beat row (agent_delete calls this). True when there was one."""
    deleted, _detail = PeriodicTask.objects.filter(name=periodic_task_name(agent_id)).delete()
    return deleted > 0


def _delete_rows(pks):
    """Bulk delete without one change-signal query per row; the caller bumps PeriodicTasks once."""
    table = connection.ops.quote_name(PeriodicTask._meta.db_table)
    pk_column = connection.ops.quote_name(PeriodicTask._meta.pk.column)
    with connection.cursor() as cursor:
        for chunk in _chunks(pks, BATCH):
            placeholders = ", ".join(["%s"] * len(chunk))
            # Identifiers come from the model's metadata; the values are parameters.
            cursor.execute(f"DELETE FROM {table} WHERE {pk_column} IN ({placeholders})", chunk)  # noqa: S608


def _chunks(items, size):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start:start + size]


# --- services --------------------------------------------------------------------------------
def schedule_state(agent):
    """What the API and the admin show about an agent's schedule."""
    return {
        "auto_learn_enabled": agent.auto_learn_enabled,
        "learning_schedule": agent.learning_schedule,
        "schedule_timezone": agent.schedule_timezone,
        "description": describe_schedule(agent),
        "next_scheduled_iteration": agent.next_scheduled_iteration,
    }


def describe_schedule(agent):
    parsed = _stored_schedule(agent.learning_schedule, agent.schedule_timezone, agent.pk)
    if parsed is None:
        return "no schedule" if not agent.learning_schedule else f"invalid schedule '{agent.learning_schedule}'"
    return f"{describe_cron(parsed.expression)} ({parsed.timezone})"


def _apply(agent, parsed, enabled, now=None):
    agent.learning_schedule = parsed.expression
    agent.schedule_timezone = parsed.timezone
    agent.auto_learn_enabled = enabled
    agent.next_scheduled_iteration = _next_after(parsed, now or djtz.now()) if enabled else None
    agent.save(update_fields=[
        "learning_schedule", "schedule_timezone", "auto_learn_enabled", "next_scheduled_iteration", "updated_at",
    ])
    sync_agent_schedule(agent)


def _state_key(agent):
    return (agent.auto_learn_enabled, agent.learning_schedule, agent.schedule_timezone)


def _details(agent, before):
    return {
        "cron": agent.learning_schedule, "timezone": agent.schedule_timezone,
        "auto_learn_enabled": agent.auto_learn_enabled,
        "next_scheduled_iteration": _iso(agent.next_scheduled_iteration),
        "previous": {"auto_learn_enabled": before[0], "cron": before[1], "timezone": before[2]},
    }


def _iso(value):
    return value.isoformat() if value else None


def schedule_set(agent, *, cron, timezone="UTC", actor):
    """Set the agent's learning cron (and zone); the beat row follows if auto-learn is on."""
    parsed = parse_cron(cron, timezone)
    before = _state_key(agent)
    with transaction.atomic():
        _apply(agent, parsed, agent.auto_learn_enabled)
        if before != _state_key(agent):
            log_activity(
                agent, "schedule_set",
                f"Learning schedule set to '{parsed.expression}' ({parsed.timezone}): {describe_cron(parsed.expression)}.",
                actor=actor, details=_details(agent, before),
            )
    return agent


def auto_learn_enable(agent, *, actor, cron=None, timezone=None):
    """Turn scheduled learning on, optionally setting the cron (zone default UTC) at the same time."""
    if cron is not None:
        parsed = parse_cron(cron, "UTC" if timezone is None else timezone)
    elif agent.learning_schedule:
        try:
            parsed = parse_cron(agent.learning_schedule, agent.schedule_timezone if timezone is None else timezone)
        except ValidationFailed as exc:
            raise ValidationFailed({"learning_schedule" if k == "cron" else k: v for k, v in exc.errors.items()})
    else:
        errors = {"learning_schedule": "set a schedule first (a five-field cron)"}
        if timezone is not None:
            try:
                _zone_name(timezone)
            except ValidationFailed as exc:
                errors.update(exc.errors)
        raise ValidationFailed(errors)
    before = _state_key(agent)
    with transaction.atomic():
        _apply(agent, parsed, True)
        if before != _state_key(agent):
            log_activity(
                agent, "auto_learn_enabled",
                f"Scheduled learning on: {describe_cron(parsed.expression)} ({parsed.timezone}); "
                f"next iteration at {agent.next_scheduled_iteration:%Y-%m-%d %H:%M} UTC.",
                actor=actor, details=_details(agent, before),
            )
    return agent


def auto_learn_disable(agent, *, actor):
    """Turn scheduled learning off; the schedule is kept and its beat row disabled."""
    before = _state_key(agent)
    with transaction.atomic():
        agent.auto_learn_enabled = False
        agent.next_scheduled_iteration = None
        agent.save(update_fields=["auto_learn_enabled", "next_scheduled_iteration", "updated_at"])
        sync_agent_schedule(agent)
        if before != _state_key(agent):
            log_activity(agent, "auto_learn_disabled", "Scheduled learning off.", actor=actor,
                         details=_details(agent, before))
    return agent


def scheduled_fire(agent_id, now=None):
    """What beat's task calls: queue the slot's iteration once, then move the next fire time.

    Re-reads the agent (the source of truth): gone, auto-learn off or no schedule means no
    iteration, and its row is removed or disabled. Returns the iteration or None.
    """
    from agents.services.learning import iteration_start

    now = _aware(now or djtz.now())
    try:
        agent_uuid = uuid.UUID(str(agent_id))
    except ValueError:
        unschedule_agent(agent_id)
        return None
    agent = TradingAgent.objects.filter(pk=agent_uuid).first()
    if agent is None:
        unschedule_agent(agent_uuid)
        return None
    parsed = _stored_schedule(agent.learning_schedule, agent.schedule_timezone, agent.pk)
    sync_agent_schedule(agent)  # heals a row edited by hand before acting on it
    if parsed is None or not agent.auto_learn_enabled:
        return None
    slot = last_fire_at_or_before(parsed, moment=now + SLOT_SKEW) or now.replace(second=0, microsecond=0)
    key = f"schedule:{slot.astimezone(dt.UTC):%Y-%m-%dT%H:%MZ}"
    iteration, created = iteration_start(agent, trigger=IterationTrigger.SCHEDULE, idempotency_key=key)
    next_fire = _next_after(parsed, max(now, slot))
    # Conditional: a schedule changed meanwhile has computed its own next time.
    TradingAgent.objects.filter(
        pk=agent.pk, auto_learn_enabled=True, learning_schedule=parsed.expression,
        schedule_timezone=parsed.timezone,
    ).update(next_scheduled_iteration=next_fire)
    if created:
        log_activity(agent, "scheduled_iteration_queued",
                     f"Scheduled iteration #{iteration.number} queued for {slot:%Y-%m-%d %H:%M} UTC "
                     f"({describe_cron(parsed.expression)}, {parsed.timezone}).",
                     details={"slot": _iso(slot), "iteration": iteration.number, "next": _iso(next_fire)})
    elif iteration.idempotency_key != key:
        log_activity(agent, "scheduled_iteration_skipped",
                     f"Schedule slot {slot:%Y-%m-%d %H:%M} UTC skipped: iteration #{iteration.number} was "
                     f"already {iteration.status}.",
                     details={"slot": _iso(slot), "iteration": iteration.number, "next": _iso(next_fire)})
    return iteration


def reconcile_schedules(now=None):
    """Make every `agent:*:learn` beat row match its agent's columns, in a bounded number of queries.

    Fixes rows edited by hand (crontab, enabled, task, args, options), creates missing rows,
    removes rows whose agent is gone or has no schedule, and corrects next_scheduled_iteration.
    Returns counts; bumps PeriodicTasks once when it changed any row.
    """
    now = _aware(now or djtz.now())
    summary = {"agents": 0, "created": 0, "updated": 0, "deleted": 0, "next_fixed": 0}
    with transaction.atomic():
        agents = TradingAgent.objects.values_list(
            "pk", "auto_learn_enabled", "learning_schedule", "schedule_timezone", "next_scheduled_iteration"
        )
        rows = {
            row.name: row
            for row in PeriodicTask.objects.filter(name__startswith="agent:", name__endswith=":learn")
            .select_related("crontab")
        }
        crontabs = {}
        for crontab in CrontabSchedule.objects.order_by("pk"):
            crontabs.setdefault(_crontab_key(crontab), crontab)
        next_times = {}
        create, update_reset, update_keep, agent_fixes = [], [], [], []
        wanted = set()
        for pk, enabled, cron, tz, next_at in agents:
            parsed = _stored_schedule(cron, tz, pk)
            expected_next = None
            if parsed is not None:
                summary["agents"] += 1
                name = periodic_task_name(pk)
                wanted.add(name)
                if parsed.crontab_key not in crontabs:
                    crontabs[parsed.crontab_key] = _crontab_for(parsed)
                desired = _desired_row(pk, crontabs[parsed.crontab_key], enabled)
                row = rows.get(name)
                if row is None:
                    create.append(PeriodicTask(name=name, date_changed=now, **desired))
                elif diff := _row_differences(row, desired, parsed):
                    for field, value in desired.items():
                        setattr(row, field, value)
                    row.date_changed = now
                    if {"crontab", "enabled"} & diff:
                        row.last_run_at = None
                        update_reset.append(row)
                    else:
                        update_keep.append(row)
                if enabled:
                    if parsed not in next_times:
                        next_times[parsed] = _next_after(parsed, now)
                    expected_next = next_times[parsed]
            if _next_is_wrong(next_at, expected_next, now):
                agent_fixes.append(TradingAgent(pk=pk, next_scheduled_iteration=expected_next))
        orphans = [row.pk for name, row in rows.items() if name not in wanted]

        PeriodicTask.objects.bulk_create(create, batch_size=BATCH)
        PeriodicTask.objects.bulk_update(update_reset, [*ROW_FIELDS, "last_run_at", "date_changed"], batch_size=BATCH)
        PeriodicTask.objects.bulk_update(update_keep, [*ROW_FIELDS, "date_changed"], batch_size=BATCH)
        _delete_rows(orphans)
        TradingAgent.objects.bulk_update(agent_fixes, ["next_scheduled_iteration"], batch_size=BATCH)
        summary.update(created=len(create), updated=len(update_reset) + len(update_keep), deleted=len(orphans),
                       next_fixed=len(agent_fixes))
        if create or update_reset or update_keep or orphans:
            PeriodicTasks.update_changed()
    summary["changed"] = summary["created"] + summary["updated"] + summary["deleted"]
    if summary["changed"] or summary["next_fixed"]:
        logger.info("reconciled learning schedules: %s", summary)
    return summary


def _next_is_wrong(current, expected, now):
    if expected is None:
        return current is not None
    if current == expected:
        return False
    # A fire due moments ago may still be on its way; scheduled_fire will move it on.
    return not (current is not None and now - FIRE_GRACE <= current <= now)


def bulk_enable_auto_learn(agents_queryset, *, cron, timezone="UTC", actor=None, now=None):
    """Turn scheduled learning on for many agents with one cron: a few queries per 500 agents.

    One shared CrontabSchedule (get_or_create), rows bulk-created or bulk-updated, one activity
    entry per agent, and PeriodicTasks bumped once. Returns the number of agents.
    """
    parsed = parse_cron(cron, timezone)
    now = _aware(now or djtz.now())
    next_fire = _next_after(parsed, now)
    ids = list(agents_queryset.order_by().values_list("pk", flat=True))
    if not ids:
        return 0
    text = f"Scheduled learning on: {describe_cron(parsed.expression)} ({parsed.timezone}) (bulk)."
    with transaction.atomic():
        crontab = _crontab_for(parsed)
        for chunk in _chunks(ids, BATCH):
            TradingAgent.objects.filter(pk__in=chunk).update(
                auto_learn_enabled=True, learning_schedule=parsed.expression, schedule_timezone=parsed.timezone,
                next_scheduled_iteration=next_fire, updated_at=now,
            )
            names = {periodic_task_name(pk): pk for pk in chunk}
            existing = {row.name: row for row in PeriodicTask.objects.filter(name__in=list(names))}
            create, update = [], []
            for name, pk in names.items():
                desired = _desired_row(pk, crontab, True)
                row = existing.get(name)
                if row is None:
                    create.append(PeriodicTask(name=name, date_changed=now, **desired))
                    continue
                for field, value in desired.items():
                    setattr(row, field, value)
                row.last_run_at, row.date_changed = None, now
                update.append(row)
            PeriodicTask.objects.bulk_create(create, batch_size=BATCH)
            PeriodicTask.objects.bulk_update(update, [*ROW_FIELDS, "last_run_at", "date_changed"], batch_size=BATCH)
        _bulk_log(ids, "auto_learn_enabled", text, actor,
                  {"cron": parsed.expression, "timezone": parsed.timezone, "next_scheduled_iteration": _iso(next_fire)})
        PeriodicTasks.update_changed()  # bulk writes send no signal: tell the running beat
    return len(ids)


def bulk_disable_auto_learn(agents_queryset, *, actor=None, now=None):
    """Turn scheduled learning off for many agents (schedules kept, rows disabled)."""
    now = _aware(now or djtz.now())
    ids = list(agents_queryset.order_by().values_list("pk", flat=True))
    if not ids:
        return 0
    with transaction.atomic():
        for chunk in _chunks(ids, BATCH):
            TradingAgent.objects.filter(pk__in=chunk).update(
                auto_learn_enabled=False, next_scheduled_iteration=None, updated_at=now
            )
            PeriodicTask.objects.filter(name__in=[periodic_task_name(pk) for pk in chunk]).update(
                enabled=False, last_run_at=None, date_changed=now
            )
        _bulk_log(ids, "auto_learn_disabled", "Scheduled learning off (bulk).", actor, {})
        PeriodicTasks.update_changed()
    return len(ids)


def _bulk_log(ids, event, message, actor, details):
    label = actor_label_for(actor)
    actor = actor if getattr(actor, "pk", None) else None
    ActivityLog.objects.bulk_create(
        [ActivityLog(agent_id=pk, event=event, message=message, details=details, actor=actor, actor_label=label)
         for pk in ids],
        batch_size=BATCH,
    )
