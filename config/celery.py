"""The Celery app. Its settings live in config/settings/celery.py under the CELERY_ prefix."""

import os

from celery import Celery
from celery.signals import worker_init, worker_process_init

from config.bootstrap import bootstrap
from config.warmup import warm_up

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("lab")


@app.on_configure.connect
def _bootstrap_before_reading_settings(sender, **kwargs):
    # Worker and beat read their configuration before anything else, so the start-up step runs
    # then; importing this module (every Django process does, through config/__init__.py) has none.
    bootstrap()


app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
@worker_process_init.connect
def _warm_up(**_kwargs):
    """What the apps registered (the compiled backtest kernel: ~0.4 s from numba's on-disk cache,
    ~2 s for the very first compile on a machine), when a worker starts (solo pool) and in each
    pool process, before any task. Celery's Django fixup has run django.setup() (and so the apps'
    ready()) on import_modules, which comes before worker_init."""
    warm_up()
