"""The one start-up step with side effects; importing the settings has none.

Called first by manage.py, config.wsgi, config.asgi, the launcher (`make run`) and, through its
`on_configure` signal, the Celery app (worker and beat read their configuration before anything
else). Idempotent: a second call changes nothing.
"""

import os

from django.core.management.utils import get_random_secret_key

from config import env


def bootstrap():
    """Create the var folders and the per-install secret key; point prometheus_client at its folder."""
    folder = env.var_dir()
    folder.mkdir(parents=True, exist_ok=True)
    if not (env.text("DJANGO_SECRET_KEY_FILE") or env.text("DJANGO_SECRET_KEY")):
        # A per-install key kept under var/ so sessions survive restarts without committing a
        # secret; production sets DJANGO_SECRET_KEY or DJANGO_SECRET_KEY_FILE.
        path = env.secret_key_path(folder)
        if not path.exists():
            path.write_text(get_random_secret_key())
            path.chmod(0o600)
    if env.text("CELERY_BROKER_URL", "filesystem://").startswith("filesystem://"):
        for path in env.filesystem_broker_folders(folder).values():
            path.mkdir(parents=True, exist_ok=True)
    # Multi-process metrics: every process (web, worker children, beat) writes its values under
    # this folder and /metrics merges them. prometheus_client reads the variable once, when it is
    # first imported, so it is set here, before Django loads anything.
    if env.metrics_multiprocess():
        metrics = env.metrics_dir()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
        metrics.mkdir(parents=True, exist_ok=True)
