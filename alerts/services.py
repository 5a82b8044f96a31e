"""Raising, deduplicating, acknowledging and deleting alerts: the one place that writes them.

Deduplication
    An alert is identified by (agent, alert_type, fingerprint). While an unacknowledged alert
    with that identity exists, raising it again does not add a row: the open alert gets
    occurrence_count + 1, last_seen_at = now, the latest message and details, and its severity
    escalated (never lowered: max by SEVERITY_RANK). A partial unique constraint on open alerts
    makes this hold under races: the loser of a concurrent insert catches the IntegrityError
    and updates the winner's row instead. Once acknowledged, the next occurrence opens a new row.

Notification (contract with alerts.notify, through the `alert_raised` signal: alerts.signals)
    Every raise sends `alert_raised` after commit; alerts.receivers calls
    `alert_notify(alert_id)`, never inside a transaction, when
      - the alert is created, or
      - a repeat comes at least LAB_ALERT_REPEAT_INTERVAL_MINUTES after its last_notified_at, or
      - a repeat escalates the severity (e.g. ERROR WARNING -> CRITICAL after N consecutive
        failures): an escalation is news, and a channel whose minimum severity filtered out
        the first occurrence may want this one.
    last_notified_at is set, by a conditional UPDATE, in the same transaction that decides to
    notify, so two concurrent repeats notify once.
"""

import datetime as dt
import logging
from collections import Counter

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from agents.models import TradingAgent
from agents.services.activity import activity_log
from alerts import signals
from alerts.models import SEVERITY_RANK, AgentAlert, AlertType, Severity
from config.observability import metrics
from core.errors import ValidationFailed

logger = logging.getLogger(__name__)

FINGERPRINT_MAX_LENGTH = AgentAlert._meta.get_field("fingerprint").max_length
_BULK_CHUNK = 500


def repeat_interval():
    return dt.timedelta(minutes=settings.LAB_ALERT_REPEAT_INTERVAL_MINUTES)


def _validate(alert_type, severity, message, fingerprint):
    errors = {}
    if alert_type not in AlertType.values:
        errors["alert_type"] = f"must be one of {', '.join(AlertType.values)}"
    if severity not in Severity.values:
        errors["severity"] = f"must be one of {', '.join(Severity.values)}"
    if not str(message or "").strip():
        errors["message"] = "must not be empty"
    if len(fingerprint) > FINGERPRINT_MAX_LENGTH:
        errors["fingerprint"] = f"at most {FINGERPRINT_MAX_LENGTH} characters"
    if errors:
        raise ValidationFailed(errors)


def _open_alerts(agent, alert_type, fingerprint):
    qs = AgentAlert.objects.filter(alert_type=alert_type, fingerprint=fingerprint, acknowledged=False)
    return qs.filter(agent__isnull=True) if agent is None else qs.filter(agent=agent)


def _announce_raised(alert, *, created, notify):
    """`alert_raised` once the raising transaction commits (alerts.signals); a failing receiver
    is logged and never reaches the caller nor stops the other receivers."""
    kwargs = {"alert_id": alert.pk, "agent_id": alert.agent_id, "alert_type": alert.alert_type,
              "severity": alert.severity, "created": created, "notify": notify}

    def send():
        for receiver, result in signals.alert_raised.send_robust(sender=AgentAlert, **kwargs):
            if isinstance(result, Exception):
                logger.error("alert_raised receiver %r failed for alert %s", receiver, alert.pk, exc_info=result)

    transaction.on_commit(send)


def alert_raise(agent, *, alert_type, severity, message, fingerprint="", details=None, now=None):
    """Raise an alert about `agent` (None: a lab-wide alert) and return (alert, created).

    A repeat of an open alert with the same agent, type and fingerprint updates that alert
    (see the module docstring) and returns created=False.
    """
    fingerprint = str(fingerprint or "")
    _validate(alert_type, severity, message, fingerprint)
    details = dict(details or {})
    explicit_now = now is not None
    now = now or timezone.now()
    # Two rounds at most: a lost insert race finds the winner's row on the second.
    for attempt in range(2):
        try:
            with transaction.atomic():
                existing = _open_alerts(agent, alert_type, fingerprint).select_for_update().first()
                if existing is not None:
                    metrics.alert_raised(alert_type, severity, new=False)
                    return _repeat(existing, severity, message, details, now), False
                with transaction.atomic():  # savepoint: a lost race must not poison the outer block
                    alert = AgentAlert.objects.create(
                        agent=agent, alert_type=alert_type, severity=severity, message=message,
                        details=details, fingerprint=fingerprint, last_notified_at=now,
                    )
                if explicit_now:
                    # created_at / last_seen_at are auto_now_add; honour the caller's clock.
                    AgentAlert.objects.filter(pk=alert.pk).update(created_at=now, last_seen_at=now)
                    alert.created_at = alert.last_seen_at = now
                _announce_raised(alert, created=True, notify=True)
                metrics.alert_raised(alert_type, severity, new=True)
                logger.info(
                    "alert raised: %s %s agent=%s fingerprint=%r: %s",
                    severity, alert_type, getattr(agent, "pk", None), fingerprint, message,
                )
                return alert, True
        except IntegrityError:
            if attempt:
                raise
            logger.info("alert %s/%r raised concurrently; updating the open one", alert_type, fingerprint)
    raise AssertionError("unreachable")  # pragma: no cover


def _repeat(existing, severity, message, details, now):
    """Fold a repeat into the open alert `existing` (locked by the caller's transaction)."""
    escalated = SEVERITY_RANK[severity] > SEVERITY_RANK[existing.severity]
    new_severity = severity if escalated else existing.severity
    AgentAlert.objects.filter(pk=existing.pk).update(
        occurrence_count=F("occurrence_count") + 1,
        last_seen_at=now,
        severity=new_severity,
        message=message,
        details=details,
    )
    due = Q(last_notified_at__isnull=True) | Q(last_notified_at__lte=now - repeat_interval())
    claim = AgentAlert.objects.filter(pk=existing.pk)
    if not escalated:
        claim = claim.filter(due)
    # Conditional: of two concurrent repeats, only the one that moves last_notified_at notifies.
    notify = bool(claim.update(last_notified_at=now))
    existing.refresh_from_db()
    _announce_raised(existing, created=False, notify=notify)
    return existing


def system_alert_raise(*, alert_type, severity, message, fingerprint="", details=None, now=None):
    """A lab-wide alert (no agent), e.g. a dead scheduler; deduplicated like any other."""
    return alert_raise(None, alert_type=alert_type, severity=severity, message=message, fingerprint=fingerprint,
                       details=details, now=now)


def graduation_ready_raise(agent, *, details, now=None):
    """GRADUATION_READY (INFO): the graduation app calls this when `agent` first meets its criteria.

    The fingerprint names the step (``graduation:<current status>``), so readiness for the next
    step after a graduation is a new alert, while repeats of the same readiness fold into one.
    """
    details = dict(details or {})
    target = details.get("target") or details.get("to") or ""
    step = f"{agent.status} -> {target}" if target else agent.status
    return alert_raise(
        agent, alert_type=AlertType.GRADUATION_READY, severity=Severity.INFO,
        message=f"{agent.name} meets its graduation criteria ({step}).",
        fingerprint=f"graduation:{agent.status}", details=details, now=now,
    )


def alert_acknowledge(alert, *, user, now=None):
    """Acknowledge one alert; acknowledging an acknowledged alert changes nothing."""
    now = now or timezone.now()
    with transaction.atomic():
        done = AgentAlert.objects.filter(pk=alert.pk, acknowledged=False).update(
            acknowledged=True, acknowledged_by=user, acknowledged_at=now
        )
        if done and alert.agent_id:
            activity_log(
                alert.agent, event="alert_acknowledged", message=f"Alert acknowledged: {alert.message[:200]}",
                actor=user, details={"alert_id": alert.pk, "alert_type": alert.alert_type},
            )
    alert.refresh_from_db()
    return alert


def alerts_acknowledge(queryset, *, user, now=None):
    """Acknowledge every open alert of `queryset` (scoped by the caller); returns how many."""
    now = now or timezone.now()
    with transaction.atomic():
        rows = list(queryset.filter(acknowledged=False).order_by().values_list("pk", "agent_id"))
        done = 0
        per_agent = Counter()
        for start in range(0, len(rows), _BULK_CHUNK):
            chunk = rows[start:start + _BULK_CHUNK]
            done += AgentAlert.objects.filter(pk__in=[pk for pk, _a in chunk], acknowledged=False).update(
                acknowledged=True, acknowledged_by=user, acknowledged_at=now
            )
            per_agent.update(agent_id for _pk, agent_id in chunk if agent_id is not None)
        _log_per_agent(per_agent, "alert_acknowledged", "acknowledged", user)
    return done


def alert_delete(alert, *, user):
    with transaction.atomic():
        if alert.agent_id:
            activity_log(
                alert.agent, event="alert_deleted", message=f"Alert deleted: {alert.message[:200]}",
                actor=user, details={"alert_id": alert.pk, "alert_type": alert.alert_type},
            )
        alert.delete()


def alerts_delete(queryset, *, user):
    """Delete the alerts of `queryset` (scoped by the caller); returns how many."""
    with transaction.atomic():
        per_agent = Counter(
            a for a in queryset.order_by().values_list("agent_id", flat=True) if a is not None
        )
        _total, by_model = AgentAlert.objects.filter(pk__in=queryset.values("pk")).delete()
        _log_per_agent(per_agent, "alert_deleted", "deleted", user)
    return by_model.get(AgentAlert._meta.label, 0)


def _log_per_agent(per_agent, event, verb, user):
    for agent in TradingAgent.objects.filter(pk__in=list(per_agent)):
        count = per_agent[agent.pk]
        activity_log(
            agent, event=event, message=f"{count} alert{'s' if count != 1 else ''} {verb}.", actor=user,
            details={"count": count},
        )
