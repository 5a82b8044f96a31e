"""Gunicorn hooks for multi-process metrics: `gunicorn -c python:config.observability.gunicorn config.wsgi`.

Settings (and so PROMETHEUS_MULTIPROC_DIR) load in each gunicorn worker; this hook runs in
the arbiter when a worker exits and removes that process's live-gauge files.
"""

import os


def _metrics_dir():
    # The arbiter may not have loaded the settings: the same default as config/settings.py.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return os.environ["PROMETHEUS_MULTIPROC_DIR"]
    var_dir = os.environ.get("LAB_VAR_DIR") or os.path.join(os.path.dirname(__file__), "..", "..", "var")
    return os.path.join(var_dir, "prometheus")


def child_exit(server, worker):
    path = _metrics_dir()
    if path and os.path.isdir(path):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, path)
