"""Gunicorn hooks for multi-process metrics: `gunicorn -c python:config.observability.gunicorn config.wsgi`.

config.wsgi bootstraps (and so sets PROMETHEUS_MULTIPROC_DIR) in each gunicorn worker; this hook runs in
the arbiter when a worker exits and removes that process's live-gauge files.
"""

import os

from config.env import metrics_dir


def child_exit(server, worker):
    # The arbiter may not have loaded the settings: the folder from the environment, as bootstrap does.
    path = str(metrics_dir())
    if os.path.isdir(path):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, path)
