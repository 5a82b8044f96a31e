"""Cron arithmetic for learning schedules: validation, description, next and last fire times.

Syntax and meaning are Celery's, which runs them: minute hour day_of_month month_of_year
day_of_week; `*`, numbers, ranges `a-b`, lists `a,b`, steps `*/n` or `a-b/n`; months 1-12 or
jan-dec, weekdays 0-6 with 0 = Sunday or sun-sat, and 7 for Sunday as most crons accept (stored
as 0: `5-7` becomes `0,5-6`); @hourly, @daily, @weekly, @monthly and @yearly are expanded. A
reversed range (22-2), a step larger than the field and Quartz extensions (L, W, #, ?) are
refused, as django-celery-beat's own validators would. When
both day_of_month and day_of_week are restricted, a day must match both (Celery), not either
(Vixie cron).

Times are wall-clock times in the cron's zone, computed with Celery's own arithmetic (what beat
runs): a time skipped by a spring-forward change fires one hour later on the wall clock (01:30
in London on the last Sunday of March fires at 02:30 BST = 01:30 UTC), and a time repeated by
the autumn change fires once, at its first occurrence.
"""

import dataclasses
import datetime as dt
import functools
import logging
import re
import zoneinfo

from celery.schedules import ParseException, crontab_parser
from cron_descriptor import ExpressionDescriptor, FormatException, MissingFieldException, WrongArgumentException
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone as djtz
from django_celery_beat import validators as beat_validators
from django_celery_beat.tzcrontab import TzAwareCrontab

from core.errors import ValidationFailed

logger = logging.getLogger(__name__)

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
MONTHS = {
    name: i
    for i, name in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)
}
WEEKDAYS = {name: i for i, name in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}


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
    # 7 (Sunday again) is accepted and rewritten to 0 before these checks (_sunday_as_seven).
    _Field(5, "day_of_week", 0, 7, WEEKDAYS, " (0 or 7 = Sunday, or sun-sat)"),
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
        zone = zone_name(timezone)
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
    return next_after(parsed, aware(after or djtz.now()))


def last_fire_at_or_before(cron, timezone="UTC", moment=None):
    """Aware UTC datetime of the cron's latest fire at or before `moment`, or None (30 years)."""
    parsed = cron if isinstance(cron, ParsedCron) else parse_cron(cron, timezone)
    moment = aware(moment or djtz.now())
    # Look back in growing windows so a frequent cron needs few steps and a rare one is found.
    for lookback in (dt.timedelta(minutes=2), dt.timedelta(hours=2), dt.timedelta(days=2),
                     dt.timedelta(days=35), dt.timedelta(days=400), dt.timedelta(days=366 * 30)):
        fire = next_after(parsed, moment - lookback)
        if fire <= moment:
            while (following := next_after(parsed, fire)) <= moment:
                fire = following
            return fire
    return None


def aware(value):
    return value.replace(tzinfo=dt.UTC) if djtz.is_naive(value) else value


def next_after(parsed, after):
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


# Zone names the tz database ships that are no place's time: "localtime" follows whatever the host
# is set to (a schedule would move with the server), "Factory" is a placeholder zone ("-00"), and
# "posixrules" is the template for POSIX TZ strings.
NOT_A_PLACE = {"localtime", "factory", "posixrules"}


@functools.lru_cache(maxsize=1)
def _zone_names():
    names = {name.lower(): name for name in zoneinfo.available_timezones() if name.lower() not in NOT_A_PLACE}
    names.setdefault("utc", "UTC")
    return names


def zone_name(timezone):
    if not isinstance(timezone, str) or not timezone.strip():
        raise ValidationFailed({"timezone": "must be a time zone name such as 'UTC' or 'Europe/London'"})
    name = _zone_names().get(timezone.strip().lower()) if len(timezone) <= MAX_TIMEZONE_LENGTH else None
    if name is None and timezone.strip().lower() in NOT_A_PLACE:
        raise ValidationFailed({"timezone": f"'{timezone}' is not a place's time zone (it follows the host or is "
                                            "a placeholder): use a name such as 'UTC' or 'Europe/London'"})
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
    parts[4] = _sunday_as_seven(parts[4])
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


def _sunday_as_seven(text):
    """A day_of_week field using 7 for Sunday, rewritten with 0 (Celery knows only 0-6); any other
    text unchanged (including one that is invalid for another reason: the checks name that)."""
    if "7" not in re.split(r"[,/-]", text):
        return text
    days = set()
    for part in text.split(","):
        match = _PART.match(part)
        if match is None:
            return text
        star, first, last, step = match.groups()
        low = 0 if star else WEEKDAYS.get(first, int(first) if first.isdigit() else None)
        high = 7 if star else WEEKDAYS.get(last or first, int(last or first) if (last or first).isdigit() else None)
        if low is None or high is None or high > 7 or low > high or (step is not None and not step.isdigit()):
            return text
        if step is not None and not star and last is None:
            high = 7  # a/n runs to the end of the week, as in cron
        days.update(range(low, high + 1, int(step) if step else 1))
    days = sorted({0 if day == 7 else day for day in days})
    if days == list(range(7)):
        return "*"
    runs, start = [], days[0]
    for previous, day in zip(days, [*days[1:], None], strict=True):
        if day != previous + 1:
            runs.append(str(start) if start == previous else f"{start}-{previous}")
            start = day
    return ",".join(runs)


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
        next_after(ParsedCron(*parts), dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    except (RuntimeError, ValueError):
        dom, moy = FIELDS[2], FIELDS[3]
        raise ValidationFailed(
            {"cron": f"{dom.label(parts[2])} never occurs in {moy.label(parts[3])}: the schedule would never fire"}
        )


def stored_schedule(agent_learning_schedule, agent_timezone, agent_id=None):
    if not agent_learning_schedule:
        return None
    try:
        return parse_cron(agent_learning_schedule, agent_timezone or "UTC")
    except ValidationFailed as exc:
        logger.warning("agent %s has an invalid stored schedule, not scheduling it: %s", agent_id, exc)
        return None


def iso(value):
    return value.isoformat() if value else None


def chunks(items, size):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start:start + size]
