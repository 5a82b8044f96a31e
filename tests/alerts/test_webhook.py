"""Webhook deliveries against a real HTTP server on 127.0.0.1: signature, retries, timeouts,
permanent failures, redirects, the failing-channel alert, and no secret in logs or rows."""

import json
import logging
import socket
import time

import pytest
from celery.exceptions import Retry

from alerts import notify
from alerts.models import AgentAlert, AlertType, Delivery, DeliveryStatus
from alerts.tasks import deliver_task
from alerts.transports.base import SendResult
from tests.alerts.helpers import (
    SECRET,
    make_alert,
    make_owner_agent,
    one_delivery,
    run_task,
    webhook_channel,
)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_delivered_to_a_real_server_with_a_valid_signature(allow_private, receiver_factory, queued):
    receiver = receiver_factory(200)
    agent = make_owner_agent()
    channel = webhook_channel(agent.owner, receiver.url())
    alert = make_alert(agent, details={"iteration": 3})

    delivery = one_delivery(alert, channel, queued)
    before = int(time.time())
    assert run_task(delivery.pk) is False

    [request] = receiver.requests
    assert receiver.verified(request)
    headers = request["headers"]
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Lab-Delivery"] == str(delivery.pk)
    assert abs(int(headers["X-Lab-Timestamp"]) - before) <= 5
    assert request["path"] == "/hook"
    body = json.loads(request["body"])
    assert body["event"] == "alert"
    assert body["alert"]["id"] == alert.pk
    assert body["alert"]["type"] == "ERROR" and body["alert"]["severity"] == "WARNING"
    assert body["alert"]["details"] == {"iteration": 3}
    assert body["agent"] == {
        "id": str(agent.pk), "name": agent.name, "status": agent.status,
        "instrument": {"symbol": agent.instrument.symbol, "name": agent.instrument.name},
    }
    assert body["console_url"].endswith(f"/admin/alerts/agentalert/{alert.pk}/change/")
    assert body["delivery"] == {"id": delivery.pk, "sequence": 1, "attempt": 1}
    assert body["folded"] == {"count": 0, "alerts": []}

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert delivery.attempts == 1 and delivery.response_code == 200
    assert delivery.delivered_at is not None and delivery.last_error == ""


def test_a_wrong_secret_does_not_verify(allow_private, receiver_factory, queued):
    receiver = receiver_factory(200, secret="another-secret-entirely-xxxxxxxx")
    agent = make_owner_agent()
    channel = webhook_channel(agent.owner, receiver.url())
    delivery = one_delivery(make_alert(agent), channel, queued)
    run_task(delivery.pk)
    assert not receiver.verified(receiver.requests[0])


def test_latest_metrics_are_in_the_payload(allow_private, receiver_factory, queued):
    from agents.models import IterationStatus, LearningIteration

    receiver = receiver_factory(200)
    agent = make_owner_agent()
    LearningIteration.objects.create(agent=agent, number=1, status=IterationStatus.SUCCEEDED, score=0.4,
                                     validation_metrics={"sharpe": 0.4, "win_rate": 0.5})
    LearningIteration.objects.create(agent=agent, number=2, status=IterationStatus.SUCCEEDED, score=0.9,
                                     validation_metrics={"sharpe": 0.9, "win_rate": 0.6})
    channel = webhook_channel(agent.owner, receiver.url())
    run_task(one_delivery(make_alert(agent), channel, queued).pk)
    body = json.loads(receiver.requests[0]["body"])
    assert body["metrics"]["iteration"] == 2
    assert body["metrics"]["validation"] == {"sharpe": 0.9, "win_rate": 0.6}


def test_receiver_500_then_200_is_retried_on_one_delivery_row(allow_private, receiver_factory, queued):
    receiver = receiver_factory(500, 200)
    agent = make_owner_agent()
    channel = webhook_channel(agent.owner, receiver.url())
    delivery = one_delivery(make_alert(agent), channel, queued)

    assert run_task(delivery.pk) is True
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.RETRYING
    assert delivery.attempts == 1 and delivery.response_code == 500
    assert "HTTP 500" in delivery.last_error

    assert run_task(delivery.pk) is False
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert delivery.attempts == 2 and delivery.response_code == 200 and delivery.last_error == ""
    assert Delivery.objects.count() == 1
    assert len(receiver.requests) == 2
    assert {r["headers"]["X-Lab-Delivery"] for r in receiver.requests} == {str(delivery.pk)}
    assert [json.loads(r["body"])["delivery"]["attempt"] for r in receiver.requests] == [1, 2]
    assert all(receiver.verified(r) for r in receiver.requests)


def test_backoff_is_exponential_with_jitter(settings, monkeypatch):
    settings.LAB_WEBHOOK_BACKOFF_SECONDS = 2.0
    monkeypatch.setattr(notify.random, "uniform", lambda a, b: 1.0)
    assert [notify.backoff_seconds(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    monkeypatch.setattr(notify.random, "uniform", lambda a, b: a)
    assert notify.backoff_seconds(3) == 4.0
    monkeypatch.setattr(notify.random, "uniform", lambda a, b: b)
    assert notify.backoff_seconds(3) == 12.0
    assert notify.backoff_seconds(1, retry_after=30) == 30  # a 429's Retry-After is a floor


def test_the_task_asks_celery_for_the_backoff_countdown(allow_private, receiver_factory, queued, monkeypatch):
    receiver = receiver_factory(503)
    agent = make_owner_agent()
    channel = webhook_channel(agent.owner, receiver.url())
    delivery = one_delivery(make_alert(agent), channel, queued)
    monkeypatch.setattr(notify.random, "uniform", lambda a, b: 1.0)
    asked = {}

    def fake_retry(countdown=None, **kwargs):
        asked["countdown"] = countdown
        return Retry("retry", when=countdown)

    monkeypatch.setattr(deliver_task, "retry", fake_retry)
    with pytest.raises(Retry):
        deliver_task(delivery.pk)
    assert asked["countdown"] == 2.0


def test_hanging_receiver_times_out_and_is_retried(allow_private, receiver_factory, queued):
    allow_private.LAB_WEBHOOK_TIMEOUT_SECONDS = 0.5
    receiver = receiver_factory({"status": 200, "hang": True})
    agent = make_owner_agent()
    channel = webhook_channel(agent.owner, receiver.url())
    delivery = one_delivery(make_alert(agent), channel, queued)

    started = time.monotonic()
    assert run_task(delivery.pk) is True
    assert time.monotonic() - started < 3
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.RETRYING
    assert delivery.attempts == 1 and delivery.response_code is None
    assert "timed out after 0.5s" in delivery.last_error


def test_404_is_permanent_and_never_retried(allow_private, receiver_factory, queued):
    receiver = receiver_factory(404)
    agent = make_owner_agent()
    channel = webhook_channel(agent.owner, receiver.url())
    delivery = one_delivery(make_alert(agent), channel, queued)

    assert run_task(delivery.pk) is False
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempts == 1 and delivery.response_code == 404
    assert "HTTP 404" in delivery.last_error
    # A redelivered message for a finished delivery sends nothing.
    assert run_task(delivery.pk) is False
    assert len(receiver.requests) == 1


@pytest.mark.parametrize(
    ("status", "retried"),
    [(408, True), (429, True), (500, True), (502, True), (503, True), (400, False), (401, False), (403, False),
     (410, False), (422, False)],
)
def test_which_statuses_are_retried(allow_private, receiver_factory, queued, status, retried):
    receiver = receiver_factory(status)
    agent = make_owner_agent()
    channel = webhook_channel(agent.owner, receiver.url())
    delivery = one_delivery(make_alert(agent), channel, queued)
    assert run_task(delivery.pk) is retried
    delivery.refresh_from_db()
    assert delivery.status == (DeliveryStatus.RETRYING if retried else DeliveryStatus.FAILED)
    assert delivery.response_code == status


def test_retry_after_of_a_429_is_honoured(allow_private, receiver_factory, queued):
    receiver = receiver_factory({"status": 429, "headers": {"Retry-After": "45"}})
    agent = make_owner_agent()
    channel = webhook_channel(agent.owner, receiver.url())
    delivery = one_delivery(make_alert(agent), channel, queued)
    assert notify.delivery_attempt(delivery.pk) >= 45


def test_retries_stop_after_max_attempts(allow_private, receiver_factory, queued):
    allow_private.LAB_WEBHOOK_MAX_ATTEMPTS = 3
    receiver = receiver_factory(503)
    agent = make_owner_agent()
    channel = webhook_channel(agent.owner, receiver.url())
    delivery = one_delivery(make_alert(agent), channel, queued)

    outcomes = [run_task(delivery.pk) for _ in range(5)]
    assert outcomes == [True, True, False, False, False]
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 3
    assert "gave up after 3 attempts" in delivery.last_error
    assert len(receiver.requests) == 3


def test_connection_refused_is_retried(allow_private, queued):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    agent = make_owner_agent()
    channel = webhook_channel(agent.owner, f"http://127.0.0.1:{port}/hook")
    delivery = one_delivery(make_alert(agent), channel, queued)
    assert run_task(delivery.pk) is True
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.RETRYING
    assert "ConnectionRefusedError" in delivery.last_error


def test_a_307_is_followed_with_the_same_signed_body(allow_private, receiver_factory, queued):
    final = receiver_factory(200)
    first = receiver_factory({"status": 307, "headers": {"Location": final.url("/moved")}})
    agent = make_owner_agent()
    channel = webhook_channel(agent.owner, first.url())
    delivery = one_delivery(make_alert(agent), channel, queued)
    assert run_task(delivery.pk) is False
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert final.requests[0]["path"] == "/moved"
    assert final.requests[0]["body"] == first.requests[0]["body"]
    assert final.verified(final.requests[0])


@pytest.mark.parametrize("status", [301, 302, 303])
def test_other_redirects_are_not_followed(allow_private, receiver_factory, queued, status):
    final = receiver_factory(200)
    first = receiver_factory({"status": status, "headers": {"Location": final.url()}})
    agent = make_owner_agent()
    channel = webhook_channel(agent.owner, first.url())
    delivery = one_delivery(make_alert(agent), channel, queued)
    assert run_task(delivery.pk) is False
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert "only 307/308 redirects are followed" in delivery.last_error
    assert final.requests == []


def test_redirect_loops_stop_after_three_hops(allow_private, receiver_factory, queued):
    loop = receiver_factory(200)
    loop.script = [{"status": 308, "headers": {"Location": "/again"}}]
    agent = make_owner_agent()
    channel = webhook_channel(agent.owner, loop.url())
    delivery = one_delivery(make_alert(agent), channel, queued)
    run_task(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and "more than 3 redirects" in delivery.last_error
    assert len(loop.requests) == 4


def test_a_channel_that_keeps_failing_raises_one_lab_alert_not_sent_through_itself(
    allow_private, receiver_factory, queued, django_capture_on_commit_callbacks
):
    broken = receiver_factory(404)
    healthy = receiver_factory(200)
    staff = UserFactory(is_staff=True)
    agent = make_owner_agent(owner=staff)
    failing = webhook_channel(staff, broken.url(), name="broken")
    good = webhook_channel(staff, healthy.url(), name="good", alert_types=["ERROR"])

    for n in range(3):
        alert = make_alert(agent, alert_type=AlertType.MILESTONE, message=f"m{n}", fingerprint=f"m{n}")
        deliveries = notify.alert_notify(alert.pk)
        assert [d.channel_id for d in deliveries] == [failing.pk]
        with django_capture_on_commit_callbacks(execute=True):
            run_task(deliveries[0].pk)

    [lab_alert] = AgentAlert.objects.filter(fingerprint=f"channel:{failing.pk}")
    assert lab_alert.agent is None and lab_alert.alert_type == AlertType.ERROR
    assert "broken" in lab_alert.message and "HTTP 404" in lab_alert.message
    assert lab_alert.details["channel_id"] == failing.pk
    # Notified through the staff user's other channel, never through the failing one.
    assert set(Delivery.objects.filter(alert=lab_alert).values_list("channel_id", flat=True)) == {good.pk}


def test_no_secret_in_logs_rows_or_errors(allow_private, receiver_factory, queued, caplog, client):
    caplog.set_level(logging.DEBUG)
    ok = receiver_factory(200)
    failing = receiver_factory(500)
    agent = make_owner_agent()
    c1 = webhook_channel(agent.owner, ok.url(), name="ok")
    c2 = webhook_channel(agent.owner, failing.url(), name="failing")
    c3 = webhook_channel(agent.owner, "http://169.254.169.254/latest/meta-data/", name="metadata")
    for delivery in notify.alert_notify(make_alert(agent).pk):
        run_task(delivery.pk)
    from alerts.channel_service import channel_send_test

    for channel in (c1, c2, c3):
        channel_send_test(channel, user=agent.owner)
    client.force_login(agent.owner)
    listing = client.get("/api/notification-channels").content.decode()

    assert {d.status for d in Delivery.objects.all()} == {"succeeded", "retrying", "failed"}
    assert caplog.records, "the notification code logs"
    assert SECRET not in caplog.text
    assert SECRET not in listing
    assert not Delivery.objects.filter(last_error__contains=SECRET).exists()


def test_an_error_mentioning_the_secret_is_redacted(allow_private, queued, monkeypatch):
    agent = make_owner_agent()
    channel = webhook_channel(agent.owner, "http://127.0.0.1:9/hook")
    delivery = one_delivery(make_alert(agent), channel, queued)
    monkeypatch.setattr(
        "alerts.transports.webhook.WebhookTransport.send",
        lambda self, channel, payload, delivery_id: SendResult.permanent(f"echoed {channel.secret}"),
    )
    run_task(delivery.pk)
    delivery.refresh_from_db()
    assert SECRET not in delivery.last_error and "[redacted]" in delivery.last_error
