"""Real Celery worker and beat processes for tests, on the test database and broker."""

import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def database_url():
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def process_env(**extra):
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(),
        LAB_VAR_DIR=str(settings.VAR_DIR),
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        PYTHONUNBUFFERED="1",
    )
    for key in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        value = getattr(settings, key, "")
        if value:
            env[key] = value
    env.update({k: str(v) for k, v in extra.items()})
    return env


def purge_filesystem_broker():
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        queue = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        shutil.rmtree(queue, ignore_errors=True)
        queue.mkdir(parents=True, exist_ok=True)
    else:
        from config.celery import app

        app.control.purge()


@contextmanager
def celery_process(kind, log_path, *args, **env):
    """Start `celery worker|beat`, wait until it says it is ready, stop it at the end."""
    cmd = [sys.executable, "-m", "celery", "-A", "config", kind, "--loglevel", "INFO", *args]
    log = open(log_path, "w+")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, cwd=ROOT, env=process_env(**env), stdout=log, stderr=subprocess.STDOUT)
    ready_marker = "ready." if kind == "worker" else "beat: Starting..."
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if ready_marker in Path(log_path).read_text():
                break
            if proc.poll() is not None:
                raise RuntimeError(f"celery {kind} exited early:\n{Path(log_path).read_text()[-3000:]}")
            time.sleep(0.2)
        else:
            raise RuntimeError(f"celery {kind} never became ready:\n{Path(log_path).read_text()[-3000:]}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def wait_for(predicate, timeout=60, interval=0.25, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
