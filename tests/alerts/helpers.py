"""Webhook test helpers: a real HTTP receiver on 127.0.0.1, the queue recorder, and the alert,
agent and channel makers that the alerts, observability and reliability tests share."""

import hashlib
import hmac
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from celery.exceptions import Retry

from alerts import notify
from alerts.models import AgentAlert, AlertType, NotificationChannel, Severity
from alerts.tasks import deliver_task, flush_folded_task
from tests.factories import InstrumentFactory, UserFactory, make_agent

SECRET = "s3cr3t-webhook-key-for-tests-0123456789"


# --- a real receiver ------------------------------------------------------------------------
class Receiver:
    """A threaded HTTP server on 127.0.0.1 that records requests and answers from a script.

    Each script entry is a status code, or a dict {"status", "headers", "hang"}; the last entry
    repeats. `hang` holds the response until the test ends (or 10 s).
    """

    def __init__(self, script=(200,), secret=SECRET):
        self.script = list(script)
        self.secret = secret
        self.requests = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
                step = receiver.script.pop(0) if len(receiver.script) > 1 else receiver.script[0]
                step = step if isinstance(step, dict) else {"status": step}
                if step.get("hang"):
                    receiver.release.wait(10)
                try:
                    self.send_response(step["status"])
                    for name, value in (step.get("headers") or {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def port(self):
        return self.server.server_address[1]

    def url(self, path="/hook"):
        return f"http://127.0.0.1:{self.port}{path}"

    def verified(self, request):
        """Recompute X-Lab-Signature as a receiver would."""
        headers = request["headers"]
        message = f"{headers['X-Lab-Timestamp']}.".encode() + request["body"]
        expected = "sha256=" + hmac.new(self.secret.encode(), message, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, headers.get("X-Lab-Signature", ""))

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Receivers:
    """Receivers made by one test, all closed at its end."""

    def __init__(self):
        self.made = []

    def __call__(self, *script, secret=SECRET):
        receiver = Receiver(script or (200,), secret=secret)
        self.made.append(receiver)
        return receiver

    def close(self):
        for receiver in self.made:
            receiver.close()


def record_queue(monkeypatch):
    """Record the delivery ids (and flushes) queued to Celery, instead of using a broker."""
    record = {"deliveries": [], "flushes": []}

    def send_on_commit(name, *args, countdown=None):
        if name == deliver_task.name:
            record["deliveries"].append(args[0])
        elif name == flush_folded_task.name:
            record["flushes"].append((args[0], countdown))
        else:
            raise AssertionError(f"unexpected task {name}")

    monkeypatch.setattr("config.task_messages.send_on_commit", send_on_commit)
    return record


def allow_private_targets(settings):
    settings.LAB_WEBHOOK_ALLOW_PRIVATE = True
    settings.LAB_WEBHOOK_TIMEOUT_SECONDS = 2.0
    return settings


def make_owner_agent(owner=None, **kwargs):
    owner = owner or UserFactory()
    return make_agent(owner=owner, instrument=InstrumentFactory(), **kwargs)


def make_alert(agent, *, alert_type=AlertType.ERROR, severity=Severity.WARNING, message="iteration 3 failed",
               **kwargs):
    return AgentAlert.objects.create(agent=agent, alert_type=alert_type, severity=severity, message=message,
                                     **kwargs)


def webhook_channel(owner, url, **kwargs):
    kwargs.setdefault("name", f"hook-{NotificationChannel.objects.count() + 1}")
    kwargs.setdefault("min_severity", Severity.INFO)
    kwargs.setdefault("secret", SECRET)
    return NotificationChannel.objects.create(owner=owner, kind="webhook", target=url, **kwargs)


def run_task(delivery_id):
    """Call the task function directly; True when it asked Celery for a retry."""
    try:
        deliver_task(delivery_id)
    except Retry:
        return True
    return False


def one_delivery(alert, channel, queued):
    deliveries = notify.alert_notify(alert.pk)
    assert [d.channel_id for d in deliveries] == [channel.pk]
    assert queued["deliveries"] == [deliveries[0].pk]
    return deliveries[0]
