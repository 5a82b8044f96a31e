"""Notifying an alert: fan-out to channels, the per-channel rate limit, and delivery attempts.

``alert_notify(alert_id)`` runs after commit, outside any transaction: it logs the alert
(always), finds the matching channels (enabled, owner active, severity and type filters; an
agent's owner, or for a lab-wide alert those who see everything) and creates one Delivery per
channel and notification ``sequence`` (unique per alert, channel, sequence: idempotent), each
sent by ``deliver_task``. A channel that errors never blocks the others.

Rate limit (per channel, rolling minute): a channel with ``rate_limit_per_minute`` non-folded
deliveries created or attempted in the last 60 s is busy; a new delivery on it is stored
``folded`` and not sent. The next delivery that goes out carries every folded one not yet
carried (payload ``folded``), and the first fold of a burst queues ``flush_folded_task`` for
when the window frees, so a burst's tail is not held until the next alert. A receiver sees at
most N deliveries a minute plus one summary per burst.

Attempts (``delivery_attempt``): a retryable failure waits
``LAB_WEBHOOK_BACKOFF_SECONDS * 2**(attempts-1) * uniform(0.5, 1.5)`` (at least a 429's
Retry-After) until LAB_WEBHOOK_MAX_ATTEMPTS. A channel whose last 3 finished deliveries failed
raises a lab-wide ERROR alert (``channel:<id>``), never sent through that channel.
"""

import datetime as dt
import logging
import random

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from agents.selectors import users_seeing_everything
from alerts import task_names
from alerts.models import (
    SEVERITY_RANK,
    AgentAlert,
    AlertType,
    Delivery,
    DeliveryStatus,
    NotificationChannel,
    Severity,
)
from alerts.services import alert_raise
from alerts.transports import transport_for
from alerts.transports.base import SendResult, build_payload
from alerts.transports.log import alert_extra, log_alert
from config import task_messages
from config.redaction import redact

logger = logging.getLogger("alerts.notifications")

RATE_WINDOW = dt.timedelta(seconds=60)
FAILING_CHANNEL_STREAK = 3
CHANNEL_FINGERPRINT_PREFIX = "channel:"
OPEN_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
FINISHED_STATUSES = (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED)


# --- fan-out -------------------------------------------------------------------------------
def alert_notify(alert_id, *, sequence=None):
    """Log the alert and queue one delivery per matching channel. Returns the deliveries."""
    alert = AgentAlert.objects.select_related("agent", "agent__instrument").filter(pk=alert_id).first()
    if alert is None:
        logger.warning("notify: alert %s no longer exists", alert_id, extra={"alert_id": alert_id})
        return []
    if sequence is None:
        sequence = next_sequence(alert)
    log_alert(alert, sequence=sequence)
    deliveries = []
    for channel in matching_channels(alert):
        try:
            deliveries.append(delivery_enqueue(alert, channel, sequence))
        except Exception:
            # One broken channel (or a broker hiccup) must not cost the others their notice.
            logger.exception(
                "notify: could not queue alert %s on channel %s", alert.pk, channel.pk,
                extra=alert_extra(alert, channel_id=channel.pk),
            )
    return deliveries


def next_sequence(alert):
    latest = (
        Delivery.objects.filter(alert=alert).order_by("-sequence", "-created_at").values("sequence", "created_at")
    ).first()
    if latest is None:
        return 1
    if alert.last_notified_at is None or latest["created_at"] >= alert.last_notified_at:
        return latest["sequence"]
    return latest["sequence"] + 1


def excluded_channel_id(alert):
    """The channel a failing-channel alert is about: never notified through itself."""
    if alert.fingerprint.startswith(CHANNEL_FINGERPRINT_PREFIX):
        try:
            return int(alert.fingerprint[len(CHANNEL_FINGERPRINT_PREFIX):])
        except ValueError:
            return None
    return None


def matching_channels(alert):
    rank = SEVERITY_RANK[Severity(alert.severity)]
    severities = [s.value for s, r in SEVERITY_RANK.items() if r <= rank]
    qs = NotificationChannel.objects.filter(enabled=True, min_severity__in=severities, owner__is_active=True)
    if alert.agent_id is not None:
        qs = qs.filter(owner_id=alert.agent.owner_id)
    else:
        # A lab-wide alert goes to those who may see it (agents.selectors), and to a channel's owner
        # about their own channel.
        recipients = users_seeing_everything("owner")
        owner_id = (alert.details or {}).get("owner_id") if excluded_channel_id(alert) else None
        if isinstance(owner_id, int):
            recipients |= Q(owner_id=owner_id)
        qs = qs.filter(recipients)
    excluded = excluded_channel_id(alert)
    if excluded is not None:
        qs = qs.exclude(pk=excluded)
    # alert_types is a JSON list; filtered here rather than with a JSON lookup SQLite lacks.
    return [c for c in qs.order_by("pk") if not c.alert_types or alert.alert_type in c.alert_types]


def _busy_deliveries(channel, now):
    return Delivery.objects.filter(channel=channel, updated_at__gt=now - RATE_WINDOW).exclude(
        status=DeliveryStatus.FOLDED
    )


def _unreported_folded(channel):
    return Delivery.objects.filter(channel=channel, status=DeliveryStatus.FOLDED, delivered_at__isnull=True)


def _seconds_until_free(channel, now):
    oldest = _busy_deliveries(channel, now).order_by("updated_at").values_list("updated_at", flat=True).first()
    if oldest is None:
        return 1.0
    return max(1.0, (oldest + RATE_WINDOW - now).total_seconds() + 1.0)


def delivery_enqueue(alert, channel, sequence):
    """Create this notification's delivery on the channel: pending and queued, or folded."""
    now = timezone.now()
    try:
        with transaction.atomic():
            # Serialises the rate-limit count per channel (a row lock on PostgreSQL; SQLite
            # already serialises writers).
            NotificationChannel.objects.select_for_update().filter(pk=channel.pk).exists()
            existing = Delivery.objects.filter(alert=alert, channel=channel, sequence=sequence).first()
            if existing is not None:
                return existing
            if _busy_deliveries(channel, now).count() >= channel.rate_limit_per_minute:
                first_of_burst = not _unreported_folded(channel).exists()
                delivery = Delivery.objects.create(
                    alert=alert, channel=channel, sequence=sequence, status=DeliveryStatus.FOLDED
                )
                if first_of_burst:
                    countdown = _seconds_until_free(channel, now)
                    task_messages.send_on_commit(task_names.FLUSH_FOLDED, channel.pk, countdown=countdown)
                logger.info(
                    "notify: alert %s folded on channel %s (rate limit %s/min)",
                    alert.pk, channel.pk, channel.rate_limit_per_minute,
                    extra=alert_extra(alert, channel_id=channel.pk, delivery_id=delivery.pk),
                )
                return delivery
            delivery = Delivery.objects.create(alert=alert, channel=channel, sequence=sequence)
            task_messages.send_on_commit(task_names.DELIVER, delivery.pk)
            return delivery
    except IntegrityError:
        # A concurrent notify of the same notification won the unique constraint.
        return Delivery.objects.get(alert=alert, channel=channel, sequence=sequence)


def folded_flush(channel_id):
    """Send the folded tail of a burst once the window frees. Returns seconds to wait, or None."""
    now = timezone.now()
    with transaction.atomic():
        channel = NotificationChannel.objects.select_for_update().filter(pk=channel_id).first()
        if channel is None:
            return None
        carrier = _unreported_folded(channel).order_by("-created_at", "-id").first()
        if carrier is None:
            return None  # a regular delivery carried them already
        if not channel.enabled:
            return None
        if _busy_deliveries(channel, now).count() >= channel.rate_limit_per_minute:
            return _seconds_until_free(channel, now)
        Delivery.objects.filter(pk=carrier.pk).update(status=DeliveryStatus.PENDING, updated_at=now)
        task_messages.send_on_commit(task_names.DELIVER, carrier.pk)
    logger.info("notify: flushing folded alerts of channel %s through delivery %s", channel_id, carrier.pk,
                extra={"channel_id": channel_id, "delivery_id": carrier.pk})
    return None


# --- the sweeper ---------------------------------------------------------------------------
STALE_PENDING = dt.timedelta(minutes=5)


def _stale_retrying_after():
    longest_backoff = settings.LAB_WEBHOOK_BACKOFF_SECONDS * 2 ** max(settings.LAB_WEBHOOK_MAX_ATTEMPTS - 1, 0) * 1.5
    return dt.timedelta(seconds=longest_backoff) + STALE_PENDING


def deliveries_requeue_stale(now=None):
    """Re-send the task of deliveries whose message was lost; flush forgotten folded rows.

    A delivery is committed before its task is queued, so a broker that is down at that moment
    leaves it pending with no message; a retry's message can be lost with its broker. Such
    rows are queued again: pending ones untouched for 5 minutes, retrying ones untouched for
    longer than the longest backoff plus 5 minutes. Delivery is at least once: receivers
    deduplicate on X-Lab-Delivery. Folded rows nobody carried for 5 minutes get a flush.
    Meant for a periodic task (alerts.tasks.requeue_stale_deliveries_task).
    """
    now = now or timezone.now()
    stale = Q(status=DeliveryStatus.PENDING, updated_at__lt=now - STALE_PENDING) | Q(
        status=DeliveryStatus.RETRYING, updated_at__lt=now - _stale_retrying_after()
    )
    requeued = 0
    for pk in Delivery.objects.filter(stale).order_by("pk").values_list("pk", flat=True)[:1000]:
        try:
            task_messages.send(task_names.DELIVER, pk)
            requeued += 1
        except Exception:
            logger.exception("could not requeue delivery %s", pk, extra={"delivery_id": pk})
            break
    flushed = 0
    channels = (
        _unreported_folded_all()
        .filter(updated_at__lt=now - STALE_PENDING)
        .order_by()
        .values_list("channel_id", flat=True)
        .distinct()
    )
    for channel_id in channels:
        try:
            task_messages.send(task_names.FLUSH_FOLDED, channel_id)
            flushed += 1
        except Exception:
            logger.exception("could not queue a flush of channel %s", channel_id, extra={"channel_id": channel_id})
            break
    if requeued or flushed:
        logger.warning("requeued %s stale deliveries, flushed %s channels", requeued, flushed)
    return {"requeued": requeued, "flushed": flushed}


def _unreported_folded_all():
    return Delivery.objects.filter(status=DeliveryStatus.FOLDED, delivered_at__isnull=True)


# --- attempts ------------------------------------------------------------------------------
def backoff_seconds(attempts, retry_after=None):
    base = settings.LAB_WEBHOOK_BACKOFF_SECONDS * 2 ** max(attempts - 1, 0) * random.uniform(0.5, 1.5)
    return max(base, retry_after or 0.0)


def delivery_attempt(delivery_id):
    """One attempt of a pending or retrying delivery. Returns seconds until the retry, or None."""
    delivery = (
        Delivery.objects.select_related("alert", "alert__agent", "alert__agent__instrument", "channel")
        .filter(pk=delivery_id)
        .first()
    )
    if delivery is None or delivery.status not in OPEN_STATUSES:
        return None
    channel = delivery.channel
    max_attempts = settings.LAB_WEBHOOK_MAX_ATTEMPTS
    if not channel.enabled or delivery.attempts >= max_attempts:
        reason = "channel disabled before delivery" if not channel.enabled else f"gave up after {max_attempts} attempts"
        Delivery.objects.filter(pk=delivery.pk, status__in=OPEN_STATUSES).update(
            status=DeliveryStatus.FAILED, last_error=reason, updated_at=timezone.now()
        )
        return None
    claimed = Delivery.objects.filter(pk=delivery.pk, status=delivery.status, attempts=delivery.attempts).update(
        attempts=F("attempts") + 1, updated_at=timezone.now()
    )
    if not claimed:
        return None  # another worker took this attempt
    delivery.attempts += 1

    folded_qs = _unreported_folded(channel).exclude(pk=delivery.pk).select_related("alert")
    folded_rows = list(folded_qs.order_by("created_at", "id")[:50])
    folded_count = folded_qs.count() if len(folded_rows) == 50 else len(folded_rows)
    try:
        payload = build_payload(
            delivery.alert, delivery=delivery, folded=[d.alert for d in folded_rows], folded_count=folded_count
        )
        result = transport_for(channel.kind).send(channel, payload, delivery_id=delivery.pk)
    except Exception as exc:
        logger.exception("delivery %s: unexpected error in the %s channel", delivery.pk, channel.kind,
                         extra={"delivery_id": delivery.pk, "channel_id": channel.pk})
        result = SendResult.retry(f"unexpected error: {type(exc).__name__}")
    return _record(delivery, channel, result, [d.pk for d in folded_rows], max_attempts)


def _record(delivery, channel, result, folded_ids, max_attempts):
    now = timezone.now()
    error = redact(result.error, channel.secret)[:2000]
    extra = {
        "delivery_id": delivery.pk, "channel_id": channel.pk, "alert_id": delivery.alert_id,
        "attempt": delivery.attempts, "response_code": result.response_code,
    }
    if result.ok:
        Delivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.SUCCEEDED, delivered_at=now, response_code=result.response_code,
            last_error="", updated_at=now,
        )
        if folded_ids:
            Delivery.objects.filter(pk__in=folded_ids, delivered_at__isnull=True).update(delivered_at=now)
        logger.info("delivery %s succeeded on channel %s (attempt %s)", delivery.pk, channel.pk, delivery.attempts,
                    extra=extra)
        return None
    if result.retryable and delivery.attempts < max_attempts:
        Delivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.RETRYING, last_error=error, response_code=result.response_code, updated_at=now
        )
        wait = backoff_seconds(delivery.attempts, result.retry_after)
        logger.warning("delivery %s attempt %s failed, retrying in %.1fs: %s", delivery.pk, delivery.attempts,
                       wait, error, extra=extra)
        return wait
    if result.retryable:
        error = f"{error} (gave up after {delivery.attempts} attempts)"
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.FAILED, last_error=error, response_code=result.response_code, updated_at=now
    )
    logger.warning("delivery %s failed for good: %s", delivery.pk, error, extra=extra)
    channel_failing_check(channel, last_error=error)
    return None


def channel_failing_check(channel, *, last_error=""):
    """Raise a lab-wide ERROR alert when the channel's last 3 finished deliveries failed."""
    recent = list(
        Delivery.objects.filter(channel=channel, status__in=FINISHED_STATUSES)
        .order_by("-updated_at", "-id")
        .values_list("status", flat=True)[:FAILING_CHANNEL_STREAK]
    )
    if len(recent) < FAILING_CHANNEL_STREAK or any(s != DeliveryStatus.FAILED for s in recent):
        return None
    try:
        alert, _created = alert_raise(
            None,
            alert_type=AlertType.ERROR,
            severity=Severity.WARNING,
            message=f"Notification channel '{channel.name}' (#{channel.pk}, {channel.kind}) failed its last "
            f"{FAILING_CHANNEL_STREAK} deliveries. Last error: {last_error}",
            fingerprint=f"{CHANNEL_FINGERPRINT_PREFIX}{channel.pk}",
            details={"channel_id": channel.pk, "owner_id": channel.owner_id, "kind": channel.kind,
                     "last_error": last_error},
        )
        return alert
    except Exception:
        logger.exception("could not raise the failing-channel alert for channel %s", channel.pk,
                         extra={"channel_id": channel.pk})
        return None
