"""The Celery app. Its settings live in config/settings/celery.py under the CELERY_ prefix."""

import os

from celery import Celery

from config.bootstrap import bootstrap

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("lab")


@app.on_configure.connect
def _bootstrap_before_reading_settings(sender, **kwargs):
    # Worker and beat read their configuration before anything else, so the start-up step runs
    # then; importing this module (every Django process does, through config/__init__.py) has none.
    bootstrap()


app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
