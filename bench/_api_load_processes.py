"""The processes bench/api_load.py starts (gunicorn, Celery workers) and how it stops them.

Nothing here imports Django: the bench configures and sets Django up before it starts anything.
"""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Processes:
    """Every process the bench started, each in a session of its own so that stopping it stops its children."""

    def __init__(self, cwd, env):
        self.cwd = cwd
        self.env = env
        self.started = []  # (name, Popen)

    def start(self, name, args, log):
        proc = subprocess.Popen(args, cwd=self.cwd, env={**os.environ, **self.env}, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append((name, proc))
        return proc

    def stop_all(self):
        for _name, proc in self.started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name, proc in self.started:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop in time: killed")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.started.clear()


def deprioritise_session(pid, nice):
    """Linux's autogroup scheduling shares the CPU fairly between sessions whatever their processes'
    nice values: a worker in a session of its own needs its session's nice too."""
    path = Path(f"/proc/{pid}/autogroup")
    if nice and path.exists():
        try:
            path.write_text(str(nice))
        except OSError as exc:
            print(f"could not lower the priority of session {pid}: {exc}")


def wait_for_web(session, base, token, log_path, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if session.get(base + "/api/strategies/", timeout=2,
                           headers={"Authorization": f"Token {token}"}).status_code == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    log = Path(log_path).read_text(errors="replace")[-3000:]
    raise SystemExit(f"gunicorn did not answer in time; its log ends with:\n{log}")
