"""The one start-up step with side effects; importing the settings has none.

Called first by manage.py, config.wsgi, config.asgi, the launcher (`make run`) and, through its
`on_configure` signal, the Celery app (worker and beat read their configuration before anything
else). Idempotent: a second call changes nothing.
"""

import os

from django.core.management.utils import get_random_secret_key

from config.env import (
    filesystem_broker_folders,
    metrics_dir,
    metrics_multiprocess,
    secret_key_path,
    text,
    var_dir,
)


def bootstrap():
    """Create the var folders and the per-install secret key; point prometheus_client at its folder."""
    # Backtests and the statistics are many small numpy calls: multi-threaded BLAS only adds
    # stalls there (measured: PBO's 4,000 x 48 correlation took 0.5-120 ms with OpenBLAS's threads
    # on a loaded machine, 2 ms on one). Read by OpenBLAS when numpy is first imported, so here,
    # before anything imports it; the processes this one starts inherit it.
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    folder = var_dir()
    folder.mkdir(parents=True, exist_ok=True)
    if not (text("DJANGO_SECRET_KEY_FILE") or text("DJANGO_SECRET_KEY")):
        # A per-install key kept under var/ so sessions survive restarts without committing a
        # secret; production sets DJANGO_SECRET_KEY or DJANGO_SECRET_KEY_FILE.
        # Created owner-only and exclusively: never readable by others, and of two processes
        # starting at once the second keeps the first one's key.
        try:
            fd = os.open(secret_key_path(folder), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as key_file:
                key_file.write(get_random_secret_key())
    if text("CELERY_BROKER_URL", "filesystem://").startswith("filesystem://"):
        for path in filesystem_broker_folders(folder).values():
            path.mkdir(parents=True, exist_ok=True)
    # Multi-process metrics: every process (web, worker children, beat) writes its values under
    # this folder and /metrics merges them. prometheus_client reads the variable once, when it is
    # first imported, so it is set here, before Django loads anything.
    if metrics_multiprocess():
        metrics = metrics_dir()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
        metrics.mkdir(parents=True, exist_ok=True)
