"""Sending a Celery task by its name: how a service hands work to a worker.

A task module imports the services it wraps, so a service that imported its task module back
would close an import cycle. Services send a message naming the task instead (each app declares
its task names once, in `<app>/task_names.py`, and registers its tasks under them). A message
sent by name is routed like `.delay()` (CELERY_TASK_ROUTES, and the options of the task when
this process has it registered). Both functions raise what the broker raises; callers that must
survive a broker outage catch it (agents.services.dispatch.send_to_worker).
"""

from celery import current_app
from django.db import transaction


def send(name, *args, countdown=None):
    """Send the task `name` with positional `args` now."""
    current_app.send_task(name, args=list(args), countdown=countdown)


def send_on_commit(name, *args, countdown=None):
    """Send the task once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: send(name, *args, countdown=countdown))
