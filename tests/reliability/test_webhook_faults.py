"""Webhook receivers failing, hanging or redirecting to a forbidden address, end to end through
a real worker and broker: each retry is a Celery retry message with its countdown.

tests/alerts already proves each rule in-process, attempt by attempt (test_webhook.py: 500 then
200 on one delivery row, timeouts retried, retries stop at LAB_WEBHOOK_MAX_ATTEMPTS, 301/302/303
never followed, redirect loops; test_ssrf.py: redirects to loopback, private, link-local and
non-http targets refused before any connection). Here the same faults go through the worker:
the retries stop by themselves, each alert has one delivery row per channel, and it all ends
within a time computed from the settings.
"""

import time

import pytest

from alerts import notify
from alerts.models import AgentAlert, AlertType, Delivery, DeliveryStatus, NotificationChannel, Severity
from tests.alerts.helpers import Receiver
from tests.factories import make_agent
from tests.processes import celery_process, wait_for
from tests.reliability.helpers import WORKER_ARGS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker, pytest.mark.slow]

MAX_ATTEMPTS, BACKOFF, TIMEOUT = 3, 0.2, 1.0
WORKER_ENV = {
    "LAB_WEBHOOK_MAX_ATTEMPTS": MAX_ATTEMPTS, "LAB_WEBHOOK_BACKOFF_SECONDS": BACKOFF,
    "LAB_WEBHOOK_TIMEOUT_SECONDS": TIMEOUT,
    "LAB_WEBHOOK_ALLOW_PRIVATE": 1,  # the receivers listen on 127.0.0.1; the metadata address stays refused
}
# A retry is a new broker message with a countdown: up to a second before the filesystem
# transport's next poll sees it, and the worker's timer; 2 s per attempt covers both.
BROKER_ROUND_TRIP = 2.0


def delivery_budget():
    """Every attempt times out, every backoff is its longest (x1.5 jitter), plus the broker trips."""
    backoffs = sum(BACKOFF * 2 ** (n - 1) * 1.5 for n in range(1, MAX_ATTEMPTS))
    return MAX_ATTEMPTS * (TIMEOUT + BROKER_ROUND_TRIP) + backoffs


def test_failing_hanging_and_redirecting_receivers_through_a_real_worker(fresh_broker, settings, tmp_path):
    failing = Receiver((500,))
    hanging = Receiver(({"status": 200, "hang": True},))
    redirecting = Receiver(({"status": 307, "headers": {"Location": "http://169.254.169.254/latest/meta-data/"}},))
    try:
        agent = make_agent()
        channels = {
            name: NotificationChannel.objects.create(
                owner=agent.owner, kind="webhook", name=name, target=receiver.url(), min_severity=Severity.INFO,
                secret="s" * 32,
            )
            for name, receiver in (("failing", failing), ("hanging", hanging), ("redirecting", redirecting))
        }
        alert = AgentAlert.objects.create(agent=agent, alert_type=AlertType.ERROR, severity=Severity.WARNING,
                                          message="iteration 3 failed")
        with celery_process("worker", tmp_path / "worker.log", *WORKER_ARGS, "-c", "3", **WORKER_ENV):
            started = time.monotonic()
            deliveries = notify.alert_notify(alert.pk)  # queued to the real broker after commit
            assert len(deliveries) == 3

            def all_finished():
                return not Delivery.objects.filter(alert=alert).exclude(status=DeliveryStatus.FAILED).exists()

            wait_for(all_finished, timeout=60, message="every delivery to end")
            took = time.monotonic() - started
            time.sleep(1.0)  # nothing more arrives afterwards
        rows = {d.channel.name: d for d in Delivery.objects.filter(alert=alert).select_related("channel")}
        assert set(rows) == set(channels)  # one delivery record per channel, retries included

        assert rows["failing"].attempts == MAX_ATTEMPTS and len(failing.requests) == MAX_ATTEMPTS
        assert rows["failing"].response_code == 500
        assert f"gave up after {MAX_ATTEMPTS} attempts" in rows["failing"].last_error
        assert {r["headers"]["X-Lab-Delivery"] for r in failing.requests} == {str(rows["failing"].pk)}

        assert rows["hanging"].attempts == MAX_ATTEMPTS and len(hanging.requests) == MAX_ATTEMPTS
        assert f"timed out after {TIMEOUT:g}s" in rows["hanging"].last_error

        assert rows["redirecting"].attempts == 1 and len(redirecting.requests) == 1  # permanent: never retried
        assert "redirect target refused" in rows["redirecting"].last_error
        assert "169.254.169.254" in rows["redirecting"].last_error

        budget = delivery_budget()
        assert took <= budget, (took, budget)
        print(f"\n[figures] webhooks via a worker: 500 -> {rows['failing'].attempts} attempts, hang -> "
              f"{rows['hanging'].attempts} attempts, redirect to 169.254.169.254 -> refused after 1; "
              f"all ended in {took:.1f}s (budget {budget:.1f}s)")
    finally:
        for receiver in (failing, hanging, redirecting):
            receiver.close()
