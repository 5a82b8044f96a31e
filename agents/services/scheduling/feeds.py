"""Beat rows of bar feeds: the only code that writes them (next to the agents' rows in beat.py).

Each instrument with a feed has one `PeriodicTask` named `instrument:<id>:feed` (task
agents.tasks.poll_bar_feed_task, args [instrument id], queue default) on a shared
`IntervalSchedule` of the feed's poll_seconds, enabled as the feed is, and expiring after one
interval (a poll that could not start in time is skipped; the next one fetches the same bars).
"""

import json

from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

from agents import task_names

TASK = task_names.POLL_BAR_FEED
QUEUE = "default"


def feed_task_name(instrument_id):
    return f"instrument:{instrument_id}:feed"


def feed_schedule_sync(config):
    """Create or correct the beat row of this feed (BarFeedConfig)."""
    with transaction.atomic():
        interval, _ = IntervalSchedule.objects.get_or_create(every=config.poll_seconds,
                                                             period=IntervalSchedule.SECONDS)
        row, _ = PeriodicTask.objects.update_or_create(
            name=feed_task_name(config.instrument_id),
            defaults={
                "task": TASK, "args": json.dumps([config.instrument_id]), "kwargs": "{}", "interval": interval,
                "crontab": None, "solar": None, "clocked": None, "enabled": bool(config.enabled),
                "one_off": False, "queue": QUEUE, "expire_seconds": config.poll_seconds,
                "description": f"Bar feed of instrument {config.instrument_id} ({config.exchange} "
                               f"{config.market_symbol} {config.timeframe}). Managed by the lab: change it with "
                               "manage.py bar_feed; edits made here are overwritten.",
            },
        )
    return row


def feed_schedule_remove(instrument_id):
    deleted, _ = PeriodicTask.objects.filter(name=feed_task_name(instrument_id)).delete()
    if deleted:
        PeriodicTasks.update_changed()
    return bool(deleted)
