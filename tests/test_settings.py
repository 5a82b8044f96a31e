"""Settings come from the environment with safe defaults and fail loudly on bad values."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def check(tmp_path, **env):
    full = {**os.environ, "LAB_VAR_DIR": str(tmp_path), **env}
    full.pop("DATABASE_URL", None)
    full.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=full, capture_output=True, text=True, timeout=60
    )


def test_defaults_are_safe(tmp_path):
    code = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings'); django.setup();"
        "from django.conf import settings as s;"
        "print(s.DEBUG, s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.SESSION_COOKIE_SECURE)"
    )
    env = {**os.environ, "LAB_VAR_DIR": str(tmp_path)}
    for key in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_DEBUG", "PYTEST_XDIST_WORKER"):
        env.pop(key, None)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.split() == ["False", "django.db.backends.sqlite3", "filesystem://", "False"], out.stderr


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("LAB_ITERATION_TIME_LIMIT", "10", "must be greater than"),
        ("LAB_MAX_CONCURRENT_ITERATIONS", "0", "positive integer"),
        ("LAB_MAX_CONCURRENT_ITERATIONS", "many", "LAB_MAX_CONCURRENT_ITERATIONS"),
        ("LAB_LOG_FORMAT", "xml", "LAB_LOG_FORMAT"),
        ("LAB_ALERT_WIN_RATE_DROP", "2", "between"),
        ("DJANGO_DEBUG", "perhaps", "DJANGO_DEBUG"),
    ],
)
def test_bad_values_stop_the_process_naming_the_variable(tmp_path, name, value, words):
    result = check(tmp_path, **{name: value})
    assert result.returncode != 0
    assert words in result.stderr or name in result.stderr, result.stderr[-2000:]
