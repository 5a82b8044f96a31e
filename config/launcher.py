"""`make run`: web + Celery worker + beat as one process group on the embedded defaults.

Ctrl-C (SIGINT) or SIGTERM stops all three: the worker gets a warm shutdown (it finishes
the task in hand), beat and the web server stop at once.

One signal per child: each child runs in its own process group, so the terminal's Ctrl-C (sent
to the whole foreground group) reaches only this launcher, which then sends each child exactly
one SIGTERM. A child that also received the terminal's SIGINT got two signals: Celery takes a
second one as a cold shutdown, and beat handled both at once (config/beat_shutdown.py).
"""

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

from config.bootstrap import bootstrap
from config.env import metrics_dir, metrics_multiprocess, number

# Seconds the children get to stop before they are killed: above a warm worker shutdown of a
# short iteration, far below a supervisor's patience.
STOP_TIMEOUT = number("LAB_STOP_TIMEOUT", 50.0, 1.0, 3600.0)

HOST = os.environ.get("LAB_HOST", "127.0.0.1")
PORT = os.environ.get("LAB_PORT", "8000")
WORKER_CONCURRENCY = os.environ.get("LAB_WORKER_CONCURRENCY", "2")


def _commands():
    py = sys.executable
    celery = [py, "-m", "celery", "-A", "config"]
    return {
        "web": [py, "manage.py", "runserver", f"{HOST}:{PORT}", "--noreload", "--insecure"],
        "worker": [*celery, "worker", "-Q", "iterations,default", "-c", WORKER_CONCURRENCY, "-n", "lab@%h",
                   "--loglevel", "INFO"],
        "beat": [*celery, "beat", "--loglevel", "INFO"],
    }


def _child_setup():
    # A shell starts background jobs with SIGINT ignored, and children inherit that: give them the
    # default back, so a SIGINT sent to one of them directly still stops it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # Linux: if the launcher itself dies (kill -9), its children get SIGTERM instead of living on.
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _wait_until_up(url, procs, stopping, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stopping():
        if any(p.poll() is not None for p in procs.values()):
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - our own local URL
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def _fresh_metrics_dir():
    # Multi-process metric files belong to one run of the lab; stale ones would double count.
    if metrics_multiprocess():
        folder = metrics_dir()
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)


def main():
    # The var folders, the secret key and PROMETHEUS_MULTIPROC_DIR, which the children inherit.
    bootstrap()
    _fresh_metrics_dir()
    env = dict(os.environ)
    # The dev server serves the admin's static files only with DEBUG or --insecure.
    env.setdefault("PYTHONUNBUFFERED", "1")
    # Each child in a process group of its own (process_group=0): the terminal's Ctrl-C reaches
    # only the launcher, which sends each child one SIGTERM.
    procs = {
        name: subprocess.Popen(cmd, env=env, preexec_fn=_child_setup, process_group=0)  # noqa: S603
        for name, cmd in _commands().items()
    }
    # The handler only records the signal; the main loop below does the printing and the
    # sending (a print inside a handler that interrupted a print raises "reentrant call").
    received = []

    def on_signal(signum, _frame):
        received.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    base = f"http://{HOST}:{PORT}"
    # /health answers 200 once the database, broker, beat and a worker are all alive.
    if _wait_until_up(f"{base}/health", procs, lambda: received, timeout=90):
        login = os.environ.get("LAB_ADMIN_USER", "operator")
        print(
            f"\n[lab] Agent Learning Lab is up\n"
            f"[lab]   console: {base}/admin/   (login: {login}; password printed by ensure_operator above,"
            f" or LAB_ADMIN_PASSWORD)\n"
            f"[lab]   API:     {base}/api/   docs: {base}/api/docs/\n"
            f"[lab] Ctrl-C stops web, worker and beat.\n",
            flush=True,
        )
    # Any child dying on its own takes the lab down: a half-running lab hides failures.
    while not received:
        exited = next(((name, proc) for name, proc in procs.items() if proc.poll() is not None), None)
        if exited:
            print(f"[lab] {exited[0]} exited with {exited[1].returncode}; stopping the others", flush=True)
            break
        time.sleep(0.2)
    why = f"{signal.Signals(received[0]).name} received" if received else "a child exited"
    print(f"\n[lab] {why}: stopping web, worker (warm), beat", flush=True)
    for proc in procs.values():
        if proc.poll() is None:
            # Exactly one SIGTERM each: Celery's warm shutdown; the dev server exits on it too.
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for name, proc in procs.items():
        try:
            proc.wait(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"[lab] {name} did not stop in time; killing it", flush=True)
            proc.kill()
            proc.wait()
    print("[lab] stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
