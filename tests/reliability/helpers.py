"""Shared tools of the fault tests: a scripted LLM server, an unreachable broker, broker and
worker helpers. The worker tests run real Celery processes (tests/processes.py) on the test
database and the configured broker (filesystem by default, Redis in CI)."""

import json
import re
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from django.conf import settings
from django.db import connection

from agents.models import IterationStatus, LearningIteration
from tests.processes import purge_filesystem_broker

UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused at once
API_KEY = "sk-ant-test-reliability-0000"


def on_sqlite():
    return connection.vendor == "sqlite"


def on_redis():
    return settings.CELERY_BROKER_URL.startswith("redis://")


def status_of(iteration_id):
    return LearningIteration.objects.filter(pk=iteration_id).values_list("status", flat=True).first()


def nothing_running():
    return not LearningIteration.objects.filter(status=IterationStatus.RUNNING).exists()


# --- the broker ---------------------------------------------------------------------------
def _redis_client():
    import redis

    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


def clear_broker():
    """Empty the lab's queues, and on Redis the unacked set a killed worker leaves behind."""
    purge_filesystem_broker()
    if on_redis():
        client = _redis_client()
        for key in client.scan_iter():
            name = key.decode(errors="replace")
            if name.startswith(("iterations", "default", "unacked")):
                client.delete(key)


def queued_messages():
    """How many task messages wait in the lab's queues (filesystem folder or Redis lists)."""
    if on_redis():
        client = _redis_client()
        return sum(client.llen(key) for key in client.scan_iter()
                   if key.decode(errors="replace").startswith(("iterations", "default"))
                   and client.type(key) == b"list")
    folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
    return sum(1 for f in folder.iterdir() if f.name.endswith(".msg"))


@contextmanager
def broker_unreachable():
    """Point this process's Celery app (the publishing side: API, services) at a dead broker.

    Connection refused at once; a short connection timeout and one retry keep each publish
    bounded. The app's connection and producer pools are dropped so the change takes effect,
    and again on the way out so publishing goes back to the real broker.
    """
    from config.celery import app

    # broker_write_url: unlike broker_url it is not overridden by a CELERY_BROKER_URL variable.
    keys = ("broker_write_url", "broker_connection_timeout", "broker_connection_max_retries",
            "task_publish_retry_policy")
    saved = {key: app.conf[key] for key in keys}

    def reset_pools():
        app._pool = None
        app.amqp._producer_pool = None

    app.conf.update(
        broker_write_url=UNREACHABLE_BROKER, broker_connection_timeout=1, broker_connection_max_retries=1,
        task_publish_retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.1},
    )
    reset_pools()
    try:
        yield
    finally:
        app.conf.update(saved)
        reset_pools()


# --- worker processes -----------------------------------------------------------------------
WORKER_ARGS = ("-Q", "iterations,default", "--without-gossip", "--without-mingle")


def child_pids(pid):
    """The pool processes of a prefork worker (Linux /proc)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def received_task_ids(log_path, task_name):
    """Ids of the `task_name` messages a worker received, in order (with repeats)."""
    pattern = re.compile(rf"Task {re.escape(task_name)}\[([0-9a-f-]+)\] received")
    return pattern.findall(Path(log_path).read_text())


# --- a scripted LLM server --------------------------------------------------------------------
def claude_message(candidates, *, stop_reason="end_turn", text=None):
    """A Messages API answer whose text is the candidates as JSON (or `text` verbatim)."""
    return {
        "id": "msg_reliability", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": json.dumps({"candidates": candidates}) if text is None else text}],
        "stop_reason": stop_reason, "stop_sequence": None,
        "usage": {"input_tokens": 1000, "output_tokens": 200},
    }


def claude_error(status, error_type, message):
    return {"type": "error", "error": {"type": error_type, "message": message}}


def sma(fast, slow, **extra):
    return {"params": {"fast": fast, "slow": slow, "long_only": True, "stop_loss": 0.0, "take_profit": 0.0, **extra},
            "rationale": f"try {fast}/{slow}"}


class ScriptedLLM:
    """A local HTTP server answering like the Messages API from a script.

    Each step: {"status", "body", "headers", "delay"} (`delay` seconds before answering; the
    last step repeats). Records when each request arrived, so a test can measure waits
    between attempts. Unlike tests/fake_anthropic.py it sends no retry-after-ms header of its
    own: the steps decide which retry hints the SDK sees.
    """

    def __init__(self, *steps):
        self.steps = list(steps)
        self.arrivals = []
        self.released = threading.Event()
        llm = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                self.rfile.read(length)
                llm.arrivals.append(time.monotonic())
                step = llm.steps[min(len(llm.arrivals), len(llm.steps)) - 1]
                if step.get("delay"):
                    llm.released.wait(step["delay"])
                payload = json.dumps(step.get("body", {})).encode()
                try:
                    self.send_response(step.get("status", 200))
                    self.send_header("content-type", "application/json")
                    for name, value in (step.get("headers") or {}).items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (timeout)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
