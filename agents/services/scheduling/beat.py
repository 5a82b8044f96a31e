"""django-celery-beat rows of learning schedules: the only code that writes them.

Each agent with a schedule has one `PeriodicTask` named `agent:<id>:learn` (task
agents.tasks.scheduled_iteration_task, args [agent id], queue default), enabled as its
auto-learn is, pointing to a `CrontabSchedule` shared by every agent with the same cron and
zone. The agent's columns are the source of truth: `schedules_reconcile` (beat, every 5
minutes) puts back any row edited by hand, creates missing ones and removes orphans.
`PeriodicTask.save()` tells the running beat through `PeriodicTasks`; bulk writes do not, so
every bulk path here calls `PeriodicTasks.update_changed()` itself.
"""

import datetime as dt
import json
import logging

from django.db import connection, transaction
from django.utils import timezone as djtz
from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

from agents import task_names
from agents.models import ActivityLog, TradingAgent
from agents.services.activity import actor_label_for
from agents.services.scheduling.cron import (
    aware,
    chunks,
    describe_cron,
    iso,
    next_after,
    parse_cron,
    stored_schedule,
)

logger = logging.getLogger(__name__)

TASK = task_names.SCHEDULED_ITERATION
QUEUE = "default"
ROW_DESCRIPTION = (
    "Learning schedule of agent {agent_id}. Managed by the lab from the agent's columns: change it "
    "through the API or the agent's admin page; edits made here are reverted by schedules_reconcile."
)
# A fire due this recently may still be on its way; reconcile leaves its next time alone.
FIRE_GRACE = dt.timedelta(minutes=5)
BATCH = 500


def periodic_task_name(agent_id):
    return f"agent:{agent_id}:learn"


def _row_values(*, task, row_id, crontab, enabled, description):
    """Every PeriodicTask column an operator could change, with the value its owner row implies
    (a task taking the owner's id as its one argument, on the default queue)."""
    return {
        "task": task, "args": json.dumps([str(row_id)]), "kwargs": "{}",
        "crontab": crontab, "interval": None, "solar": None, "clocked": None,
        "enabled": bool(enabled), "one_off": False, "start_time": None, "expires": None, "expire_seconds": None,
        "queue": QUEUE, "exchange": None, "routing_key": None, "headers": "{}", "priority": None,
        "description": description,
    }


def _desired_row(agent_id, crontab, enabled):
    """The row the agent implies."""
    return _row_values(task=TASK, row_id=agent_id, crontab=crontab, enabled=enabled,
                       description=ROW_DESCRIPTION.format(agent_id=agent_id))


ROW_FIELDS = list(_desired_row("x", None, True))


def _crontab_key(row):
    return (row.minute, row.hour, row.day_of_month, row.month_of_year, row.day_of_week, str(row.timezone))


def _row_differences(row, desired, parsed):
    diff = set()
    for field, value in desired.items():
        if field == "crontab":
            if row.crontab_id is None or _crontab_key(row.crontab) != parsed.crontab_key:
                diff.add(field)
        elif field in ("interval", "solar", "clocked"):
            if getattr(row, f"{field}_id") is not None:  # the id: no query for the related row
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


def agent_schedule_sync(agent):
    """Make the agent's beat row match its columns; the only writer of one agent's row.

    A schedule gives a row (enabled as auto-learn is); no schedule removes it. Writes only when
    something differs, so beat reloads only on real changes (PeriodicTask.save bumps
    PeriodicTasks). Returns the row or None.
    """
    parsed = stored_schedule(agent.learning_schedule, agent.schedule_timezone, agent.pk)
    return beat_row_sync(periodic_task_name(agent.pk), task=TASK, row_id=agent.pk, parsed=parsed,
                         enabled=agent.auto_learn_enabled, description=ROW_DESCRIPTION.format(agent_id=agent.pk))


def beat_row_sync(name, *, task, row_id, parsed, enabled, description):
    """Make the beat row ``name`` fire ``task(row_id)`` on ``parsed`` (a ParsedCron; None removes
    the row), enabled or not. The one writer of single beat rows: agents' learning schedules and
    other apps' rows (tournament rounds) whose names stay outside ``agent:*:learn``, so
    schedules_reconcile never touches them. Writes only when something differs. The row or None.
    """
    if parsed is None:
        PeriodicTask.objects.filter(name=name).delete()  # per-row delete: its signal bumps beat
        return None
    desired = _row_values(task=task, row_id=row_id, crontab=_crontab_for(parsed), enabled=enabled,
                          description=description)
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


def agent_schedule_remove(agent_id):
    """Remove an agent's beat row (agent_delete calls this). True when there was one."""
    return beat_row_remove(periodic_task_name(agent_id))


def beat_row_remove(name):
    """Remove the beat row ``name``. True when there was one."""
    deleted, _detail = PeriodicTask.objects.filter(name=name).delete()
    return deleted > 0


def _delete_rows(pks):
    """Bulk delete without one change-signal query per row; the caller bumps PeriodicTasks once."""
    table = connection.ops.quote_name(PeriodicTask._meta.db_table)
    pk_column = connection.ops.quote_name(PeriodicTask._meta.pk.column)
    with connection.cursor() as cursor:
        for chunk in chunks(pks, BATCH):
            placeholders = ", ".join(["%s"] * len(chunk))
            # Identifiers come from the model's metadata; the values are parameters.
            cursor.execute(f"DELETE FROM {table} WHERE {pk_column} IN ({placeholders})", chunk)  # noqa: S608


def schedules_reconcile(now=None):
    """Make every `agent:*:learn` beat row match its agent's columns, in a bounded number of queries.

    Fixes rows edited by hand (crontab, enabled, task, args, options), creates missing rows,
    removes rows whose agent is gone or has no schedule, and corrects next_scheduled_iteration.
    Returns counts; bumps PeriodicTasks once when it changed any row.
    """
    now = aware(now or djtz.now())
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
            parsed = stored_schedule(cron, tz, pk)
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
                        next_times[parsed] = next_after(parsed, now)
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


def auto_learn_enable_bulk(agents_queryset, *, cron, timezone="UTC", actor=None, now=None):
    """Turn scheduled learning on for many agents with one cron: a few queries per 500 agents.

    One shared CrontabSchedule (get_or_create), rows bulk-created or bulk-updated, one activity
    entry per agent, and PeriodicTasks bumped once. Returns the number of agents.
    """
    parsed = parse_cron(cron, timezone)
    now = aware(now or djtz.now())
    next_fire = next_after(parsed, now)
    ids = list(agents_queryset.order_by().values_list("pk", flat=True))
    if not ids:
        return 0
    text = f"Scheduled learning on: {describe_cron(parsed.expression)} ({parsed.timezone}) (bulk)."
    with transaction.atomic():
        crontab = _crontab_for(parsed)
        for chunk in chunks(ids, BATCH):
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
                  {"cron": parsed.expression, "timezone": parsed.timezone, "next_scheduled_iteration": iso(next_fire)})
        PeriodicTasks.update_changed()  # bulk writes send no signal: tell the running beat
    return len(ids)


def auto_learn_disable_bulk(agents_queryset, *, actor=None, now=None):
    """Turn scheduled learning off for many agents (schedules kept, rows disabled)."""
    now = aware(now or djtz.now())
    ids = list(agents_queryset.order_by().values_list("pk", flat=True))
    if not ids:
        return 0
    with transaction.atomic():
        for chunk in chunks(ids, BATCH):
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
