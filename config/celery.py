"""The Celery app. Its settings live in config/settings.py under the CELERY_ prefix."""

import os

from celery import Celery
from celery.signals import worker_init, worker_process_init

from agents.backtest import kernel

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("lab")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
@worker_process_init.connect
def _warm_up_backtests(**_kwargs):
    """Load the compiled backtest kernel when a worker starts (solo pool) and in each pool process,
    before any task: numba's on-disk cache makes this ~0.4 s; the very first compile on a machine,
    ~2 s, happens here too, never in a user's request."""
    kernel.warm_up()
