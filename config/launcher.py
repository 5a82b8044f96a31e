"""`make run`: web + Celery worker + beat as one process group on the embedded defaults.

Ctrl-C (SIGINT) or SIGTERM stops all three: the worker gets a warm shutdown (it finishes
the task in hand), beat and the web server stop at once.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

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


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_until_up(url, procs, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
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


def _fresh_metrics_dir(env):
    # Multi-process metric files belong to one run of the lab; stale ones would double count.
    folder = env.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(env.get("LAB_VAR_DIR", "var"), "prometheus")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)


def main():
    env = dict(os.environ)
    _fresh_metrics_dir(env)
    # The dev server serves the admin's static files only with DEBUG or --insecure.
    env.setdefault("PYTHONUNBUFFERED", "1")
    # Backtests are many small numpy calls; multi-threaded BLAS only adds stalls there.
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    # A shell starts background jobs with SIGINT ignored, and children inherit that; give
    # them the default back so Ctrl-C on the process group reaches every one of them.
    procs = {
        name: subprocess.Popen(cmd, env=env, preexec_fn=_default_sigint)  # noqa: S603
        for name, cmd in _commands().items()
    }
    stopping = False

    def stop(signum, _frame):
        nonlocal stopping
        if stopping:
            return
        stopping = True
        print(f"\n[lab] {signal.Signals(signum).name} received: stopping web, worker (warm), beat", flush=True)
        for proc in procs.values():
            if proc.poll() is None:
                # SIGTERM is Celery's warm shutdown; the dev server exits on it too.
                proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    base = f"http://{HOST}:{PORT}"
    # /health answers 200 once the database, broker, beat and a worker are all alive.
    if _wait_until_up(f"{base}/health", procs, timeout=90):
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
    while not stopping:
        for name, proc in procs.items():
            if proc.poll() is not None:
                print(f"[lab] {name} exited with {proc.returncode}; stopping the others", flush=True)
                stop(signal.SIGTERM, None)
                break
        time.sleep(0.5)
    deadline = time.monotonic() + 50
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
