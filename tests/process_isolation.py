"""Each parallel test process gets its own var folder and broker, set before Django loads.

pytest-django imports the settings while pytest loads the initial conftests, before
tests/conftest.py runs, so this plugin is loaded ahead of them (`-p tests.process_isolation` in
pyproject.toml). A pytest-xdist process (PYTEST_XDIST_WORKER=gw0, gw1...) gets its own var folder
(embedded database, broker folder, metrics files) and, on Redis, its own broker database, so the
real Celery worker one of them starts (tests/processes.py) never takes another's messages; the
worker inherits this environment. PostgreSQL test databases get their _gwN suffix from
pytest-django itself.
"""

import os
from urllib.parse import urlsplit

import pytest

from config import env
from config.bootstrap import bootstrap


def _worker_broker_url(url, number):
    # Database 0 + 1 + n of the configured Redis (redis://host:port/<db>) for worker gw<n>.
    parts = urlsplit(url)
    db = parts.path.lstrip("/")
    index = int(db) if db.isdigit() else 0
    return parts._replace(path=f"/{index + 1 + number}").geturl()


def isolate(worker):
    """Point this test process's environment at folders and a broker of its own."""
    os.environ["LAB_VAR_DIR"] = str(env.var_dir() / worker)
    # Inherited from the controlling process: bootstrap derives this one's from LAB_VAR_DIR.
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    broker = env.text("CELERY_BROKER_URL")
    if broker.startswith("redis://"):
        # Celery reads this variable itself, ahead of the settings: both see the same broker.
        os.environ["CELERY_BROKER_URL"] = _worker_broker_url(broker, int(worker.removeprefix("gw")))


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        isolate(worker)
    bootstrap()
