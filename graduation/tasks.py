"""Celery tasks of graduation: thin wrappers around one service each, idempotent.

Beat schedule (config/settings/celery.py CELERY_BEAT_SCHEDULE):
    "paper-tick":  graduation.tasks.paper_tick_task,  every LAB_PAPER_INTERVAL_SECONDS
    "replay-tick": graduation.tasks.replay_tick_task, every LAB_REPLAY_INTERVAL_SECONDS
"""

from celery import shared_task

from graduation.trading.feed import replay_tick
from graduation.trading.runner import paper_tick


@shared_task(ignore_result=True)
def paper_tick_task():
    """Every open paper / live account processes the bars newer than the last one it saw."""
    return paper_tick()


@shared_task(ignore_result=True)
def replay_tick_task():
    """Release the next held-back bars of the bundled datasets (does nothing unless LAB_REPLAY_ENABLED)."""
    return replay_tick()
