"""Fan-out of an alert to channels, the always-on log line, sequences, the rate limit with
folding under a frozen clock, and the email and log channels."""

import datetime as dt
import json
import logging

import pytest
import time_machine
from django.core import mail

from alerts import notify
from alerts.models import AgentAlert, AlertType, Delivery, DeliveryStatus, NotificationChannel, Severity
from tests.alerts.helpers import (
    make_alert,
    make_owner_agent,
    run_task,
    webhook_channel,
)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db



T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def channel(owner, kind="log", **kwargs):
    kwargs.setdefault("name", f"{kind}-{NotificationChannel.objects.count() + 1}")
    kwargs.setdefault("min_severity", Severity.INFO)
    if kind == "email":
        kwargs.setdefault("target", "ops@example.com")
    return NotificationChannel.objects.create(owner=owner, kind=kind, **kwargs)


# --- matching ------------------------------------------------------------------------------
def test_only_matching_channels_of_the_agent_owner_get_a_delivery(queued):
    agent = make_owner_agent()
    owner = agent.owner
    everything = channel(owner, name="everything")
    warning_up = channel(owner, name="warning-up", min_severity=Severity.WARNING)
    channel(owner, name="critical-only", min_severity=Severity.CRITICAL)
    channel(owner, name="disabled", enabled=False)
    errors_only = channel(owner, name="errors", alert_types=["ERROR", "MILESTONE"])
    channel(owner, name="milestones", alert_types=["MILESTONE"])
    channel(UserFactory(), name="someone else's")

    alert = make_alert(agent, alert_type=AlertType.ERROR, severity=Severity.WARNING)
    deliveries = notify.alert_notify(alert.pk)

    assert {d.channel_id for d in deliveries} == {everything.pk, warning_up.pk, errors_only.pk}
    assert all(d.status == DeliveryStatus.PENDING and d.sequence == 1 for d in deliveries)
    assert sorted(queued["deliveries"]) == sorted(d.pk for d in deliveries)


def test_inactive_owners_get_nothing(queued):
    agent = make_owner_agent()
    channel(agent.owner)
    agent.owner.is_active = False
    agent.owner.save()
    assert notify.alert_notify(make_alert(agent).pk) == []


def test_lab_wide_alerts_go_to_every_superusers_channels(queued):
    root_a, root_b = UserFactory(is_staff=True, is_superuser=True), UserFactory(is_superuser=True)
    staff, plain = UserFactory(is_staff=True), UserFactory()
    a = channel(root_a)
    b = channel(root_b, kind="email")
    channel(plain)
    channel(staff)  # console access, but lab-wide alerts are not theirs to see
    channel(root_b, name="info-filtered", min_severity=Severity.CRITICAL)
    alert = AgentAlert.objects.create(agent=None, alert_type=AlertType.SYSTEM, severity=Severity.WARNING,
                                      message="beat has not ticked for 10 minutes", fingerprint="beat")
    assert {d.channel_id for d in notify.alert_notify(alert.pk)} == {a.pk, b.pk}


def test_a_failing_channel_alert_skips_that_channel_and_reaches_its_owner(queued):
    staff, owner = UserFactory(is_staff=True, is_superuser=True), UserFactory()
    failing = channel(owner, name="failing")
    owner_other = channel(owner, name="other")
    staff_channel = channel(staff)
    alert = AgentAlert.objects.create(
        agent=None, alert_type=AlertType.ERROR, severity=Severity.WARNING, message="channel keeps failing",
        fingerprint=f"channel:{failing.pk}", details={"channel_id": failing.pk, "owner_id": owner.pk},
    )
    assert {d.channel_id for d in notify.alert_notify(alert.pk)} == {owner_other.pk, staff_channel.pk}


def test_the_log_line_is_always_written_even_without_channels(queued, caplog):
    caplog.set_level(logging.INFO, logger="alerts.notifications")
    agent = make_owner_agent()
    alert = make_alert(agent, alert_type=AlertType.MILESTONE, severity=Severity.INFO, message="100 iterations")
    assert notify.alert_notify(alert.pk) == []
    [record] = [r for r in caplog.records if r.name == "alerts.notifications"]
    assert record.levelno == logging.INFO
    assert record.alert_id == alert.pk
    assert record.agent_id == str(agent.pk)
    assert record.alert_type == "MILESTONE"
    assert record.severity == "INFO"
    assert "100 iterations" in record.getMessage()


def test_notifying_twice_is_idempotent(queued):
    agent = make_owner_agent()
    c = channel(agent.owner)
    alert = make_alert(agent)
    first = notify.alert_notify(alert.pk)
    second = notify.alert_notify(alert.pk)
    assert [d.pk for d in first] == [d.pk for d in second]
    assert Delivery.objects.filter(channel=c).count() == 1
    assert len(queued["deliveries"]) == 1


def test_a_repeat_after_the_interval_is_the_next_sequence(queued):
    agent = make_owner_agent()
    c = channel(agent.owner)
    with time_machine.travel(T0, tick=False):
        alert = make_alert(agent, last_notified_at=T0)
        notify.alert_notify(alert.pk)
    with time_machine.travel(T0 + dt.timedelta(hours=1), tick=False):
        AgentAlert.objects.filter(pk=alert.pk).update(last_notified_at=T0 + dt.timedelta(hours=1))
        [again] = notify.alert_notify(alert.pk)
        assert notify.alert_notify(alert.pk)[0].pk == again.pk  # the same repeat twice: one row
    assert again.sequence == 2
    assert list(Delivery.objects.filter(channel=c).order_by("sequence").values_list("sequence", flat=True)) == [1, 2]
    assert notify.alert_notify(alert.pk, sequence=7)[0].sequence == 7


def test_one_channel_failing_does_not_block_the_others(queued, monkeypatch, caplog):
    agent = make_owner_agent()
    first = channel(agent.owner, name="a-first")
    second = channel(agent.owner, name="b-second")
    calls = []

    def flaky(name, delivery_id):
        calls.append(delivery_id)
        if len(calls) == 1:
            raise ConnectionError("broker down")
        queued["deliveries"].append(delivery_id)

    monkeypatch.setattr("config.task_messages.send_on_commit", flaky)
    deliveries = notify.alert_notify(make_alert(agent).pk)
    assert [d.channel_id for d in deliveries] == [second.pk]
    assert not Delivery.objects.filter(channel=first).exists()  # rolled back, nothing half-queued
    assert "could not queue alert" in caplog.text


def test_a_vanished_alert_is_ignored(queued):
    assert notify.alert_notify(999_999) == []


def test_a_channel_disabled_before_sending_fails_its_delivery(queued):
    agent = make_owner_agent()
    c = channel(agent.owner)
    [delivery] = notify.alert_notify(make_alert(agent).pk)
    c.enabled = False
    c.save()
    run_task(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and "disabled" in delivery.last_error


# --- log and email channels ----------------------------------------------------------------
def test_a_log_channel_row_delivers_a_structured_line(queued, caplog):
    caplog.set_level(logging.INFO, logger="alerts.notifications")
    agent = make_owner_agent()
    c = channel(agent.owner)
    [delivery] = notify.alert_notify(make_alert(agent).pk)
    run_task(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 1
    lines = [r for r in caplog.records if getattr(r, "channel_id", None) == c.pk and "notification via" in r.msg]
    assert len(lines) == 1 and lines[0].alert_type == "ERROR"


def test_email_through_the_locmem_backend(settings, queued):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.DEFAULT_FROM_EMAIL = "lab@example.com"
    agent = make_owner_agent()
    channel(agent.owner, kind="email", target="oncall@example.com")
    alert = make_alert(agent, severity=Severity.CRITICAL, message="iteration 7 failed: refiner crashed",
                       details={"iteration": 7})
    [delivery] = notify.alert_notify(alert.pk)
    run_task(delivery.pk)

    [message] = mail.outbox
    assert message.to == ["oncall@example.com"] and message.from_email == "lab@example.com"
    assert message.subject.startswith("[Lab CRITICAL] ERROR")
    assert agent.name in message.subject
    assert "iteration 7 failed: refiner crashed" in message.body
    assert f"/admin/alerts/agentalert/{alert.pk}/change/" in message.body
    assert "iteration: 7" in message.body
    assert agent.instrument.symbol in message.body
    assert not message.alternatives  # plain text only
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED


def test_email_refused_by_the_server_is_permanent(settings, queued, monkeypatch):
    import smtplib

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    agent = make_owner_agent()
    channel(agent.owner, kind="email")

    def refuse(*args, **kwargs):
        raise smtplib.SMTPRecipientsRefused({"ops@example.com": (550, b"no such user")})

    monkeypatch.setattr("alerts.transports.email.send_mail", refuse)
    [delivery] = notify.alert_notify(make_alert(agent).pk)
    assert run_task(delivery.pk) is False
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and "refused" in delivery.last_error


# --- rate limit and folding ----------------------------------------------------------------
def test_a_burst_is_folded_into_the_next_delivery_under_a_frozen_clock(
    allow_private, receiver_factory, queued, django_capture_on_commit_callbacks
):
    receiver = receiver_factory(200)
    agent = make_owner_agent()
    hook = webhook_channel(agent.owner, receiver.url(), rate_limit_per_minute=2)

    with time_machine.travel(T0, tick=False):
        burst = [make_alert(agent, fingerprint=f"f{n}", message=f"alert {n}") for n in range(5)]
        with django_capture_on_commit_callbacks(execute=True):
            rows = [notify.alert_notify(a.pk)[0] for a in burst]
        assert [r.status for r in rows] == ["pending", "pending", "folded", "folded", "folded"]
        assert queued["deliveries"] == [rows[0].pk, rows[1].pk]
        # One flush per burst, for when the window frees (the oldest send + 60 s, + 1 s).
        assert queued["flushes"] == [(hook.pk, 61.0)]
        # The next delivery that goes out carries the folded ones, once.
        for row in rows[:2]:
            run_task(row.pk)
        first, second = (json.loads(r["body"]) for r in receiver.requests)
        assert first["folded"]["count"] == 3
        assert [a["message"] for a in first["folded"]["alerts"]] == ["alert 2", "alert 3", "alert 4"]
        assert [a["id"] for a in first["folded"]["alerts"]] == [a.pk for a in burst[2:]]
        assert second["folded"] == {"count": 0, "alerts": []}
        assert not Delivery.objects.filter(status=DeliveryStatus.FOLDED, delivered_at__isnull=True).exists()

    with time_machine.travel(T0 + dt.timedelta(seconds=30), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            late = notify.alert_notify(make_alert(agent, fingerprint="late", message="late").pk)[0]
        assert late.status == DeliveryStatus.FOLDED  # still two sends in the last minute
        assert queued["flushes"][-1] == (hook.pk, 31.0)  # a new burst: its own flush

    with time_machine.travel(T0 + dt.timedelta(seconds=61), tick=False):
        carrier = notify.alert_notify(make_alert(agent, fingerprint="next", message="next").pk)[0]
        assert carrier.status == DeliveryStatus.PENDING
        run_task(carrier.pk)
        body = json.loads(receiver.requests[-1]["body"])
        assert body["alert"]["message"] == "next"
        assert body["folded"]["count"] == 1 and body["folded"]["alerts"][0]["message"] == "late"
        # The flush finds nothing left to send.
        assert notify.folded_flush(hook.pk) is None

    assert len(receiver.requests) == 3
    assert Delivery.objects.filter(status=DeliveryStatus.FOLDED).count() == 4
    assert not Delivery.objects.filter(status=DeliveryStatus.FOLDED, delivered_at__isnull=True).exists()


def test_at_most_n_deliveries_start_in_any_rolling_minute(queued):
    agent = make_owner_agent()
    c = channel(agent.owner, rate_limit_per_minute=3)
    statuses = []
    for second in range(0, 150, 10):
        with time_machine.travel(T0 + dt.timedelta(seconds=second), tick=False):
            statuses.append(notify.alert_notify(make_alert(agent, fingerprint=f"s{second}").pk)[0].status)
    sent_at = [T0 + dt.timedelta(seconds=10 * i) for i, s in enumerate(statuses) if s == "pending"]
    assert statuses[:4] == ["pending", "pending", "pending", "folded"]
    for start in sent_at:
        assert sum(start <= t < start + dt.timedelta(seconds=60) for t in sent_at) <= 3
    assert Delivery.objects.filter(channel=c, status="pending").count() == len(sent_at)


def test_the_tail_of_a_burst_is_flushed_when_the_window_frees(
    allow_private, receiver_factory, queued, django_capture_on_commit_callbacks
):
    receiver = receiver_factory(200)
    agent = make_owner_agent()
    hook = webhook_channel(agent.owner, receiver.url(), rate_limit_per_minute=1)

    with time_machine.travel(T0, tick=False):
        sent = notify.alert_notify(make_alert(agent, fingerprint="f0", message="m0").pk)[0]
        run_task(sent.pk)
    rows = []
    for n, second in ((1, 5), (2, 6)):
        with (time_machine.travel(T0 + dt.timedelta(seconds=second), tick=False),
              django_capture_on_commit_callbacks(execute=True)):
            rows.append(notify.alert_notify(make_alert(agent, fingerprint=f"f{n}", message=f"m{n}").pk)[0])
    assert [r.status for r in rows] == ["folded", "folded"]
    assert queued["flushes"] == [(hook.pk, 56.0)]  # once per burst

    with time_machine.travel(T0 + dt.timedelta(seconds=10), tick=False):
        assert notify.folded_flush(hook.pk) == pytest.approx(51.0)  # still busy: come back later
    with time_machine.travel(T0 + dt.timedelta(seconds=61), tick=False):
        assert notify.folded_flush(hook.pk) is None
        rows[1].refresh_from_db()
        assert rows[1].status == DeliveryStatus.PENDING  # the newest folded one carries the rest
        assert queued["deliveries"][-1] == rows[1].pk
        run_task(rows[1].pk)

    body = json.loads(receiver.requests[-1]["body"])
    assert body["alert"]["message"] == "m2"
    assert body["folded"]["count"] == 1 and body["folded"]["alerts"][0]["message"] == "m1"
    rows[0].refresh_from_db()
    assert rows[0].status == DeliveryStatus.FOLDED and rows[0].delivered_at is not None
    with time_machine.travel(T0 + dt.timedelta(seconds=200), tick=False):
        sent_before = len(queued["deliveries"])
        assert notify.folded_flush(hook.pk) is None
        assert len(queued["deliveries"]) == sent_before


def test_the_flush_task_retries_while_the_window_is_full(queued, monkeypatch):
    from celery.exceptions import Retry

    from alerts.tasks import flush_folded_task

    monkeypatch.setattr(notify, "folded_flush", lambda channel_id: 12.0)
    with pytest.raises(Retry):
        flush_folded_task(1)
    monkeypatch.setattr(notify, "folded_flush", lambda channel_id: None)
    flush_folded_task(1)


def test_rate_limits_are_per_channel(queued):
    agent = make_owner_agent()
    tight = channel(agent.owner, name="tight", rate_limit_per_minute=1)
    loose = channel(agent.owner, name="loose", rate_limit_per_minute=10)
    with time_machine.travel(T0, tick=False):
        for n in range(3):
            notify.alert_notify(make_alert(agent, fingerprint=f"f{n}").pk)
    statuses = {c.name: sorted(Delivery.objects.filter(channel=c).values_list("status", flat=True))
                for c in (tight, loose)}
    assert statuses == {"tight": ["folded", "folded", "pending"], "loose": ["pending"] * 3}


# --- the sweeper ---------------------------------------------------------------------------
def test_deliveries_whose_message_was_lost_are_queued_again(queued, monkeypatch, settings):
    from alerts.tasks import deliver_task, flush_folded_task

    settings.LAB_WEBHOOK_BACKOFF_SECONDS = 2.0
    settings.LAB_WEBHOOK_MAX_ATTEMPTS = 5  # longest backoff 2 * 2**4 * 1.5 = 48 s
    sent, flushed = [], []
    monkeypatch.setattr("config.task_messages.send",
                        lambda name, pk: {deliver_task.name: sent, flush_folded_task.name: flushed}[name].append(pk))
    agent = make_owner_agent()
    c = channel(agent.owner, rate_limit_per_minute=1)
    with time_machine.travel(T0, tick=False):
        pending, folded = (notify.alert_notify(make_alert(agent, fingerprint=f"f{n}").pk)[0] for n in range(2))
        retrying = notify.alert_notify(make_alert(agent, fingerprint="r").pk)[0]
    Delivery.objects.filter(pk=retrying.pk).update(status=DeliveryStatus.RETRYING)
    done = Delivery.objects.create(alert=pending.alert, channel=c, sequence=2, status=DeliveryStatus.SUCCEEDED)
    assert folded.status == retrying.status == DeliveryStatus.FOLDED

    with time_machine.travel(T0 + dt.timedelta(minutes=4), tick=False):
        assert notify.deliveries_requeue_stale() == {"requeued": 0, "flushed": 0}
    with time_machine.travel(T0 + dt.timedelta(minutes=5, seconds=1), tick=False):
        assert notify.deliveries_requeue_stale() == {"requeued": 1, "flushed": 1}
        assert sent == [pending.pk] and flushed == [c.pk]
    with time_machine.travel(T0 + dt.timedelta(minutes=6), tick=False):
        sent.clear()
        notify.deliveries_requeue_stale()
        assert retrying.pk in sent and done.pk not in sent
