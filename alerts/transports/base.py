"""What every transport sends (one payload, rendered as JSON or plain text) and the contract a
transport implements. A transport is the sender for one channel kind; the channel is the stored
``NotificationChannel`` row it sends to.

The payload (webhook body; the email and log transports render the same content as text):

    {
      "event": "alert",                     # "test" for a test notification
      "delivery": {"id": 12, "sequence": 1, "attempt": 1},
      "alert": {"id", "type", "severity", "message", "details", "fingerprint",
                "occurrence_count", "acknowledged", "created_at", "last_seen_at"},
      "agent": {"id", "name", "status", "instrument": {"symbol", "name"}} or null (lab-wide),
      "metrics": {"iteration", "score", "finished_at", "validation": {...}} or null,
      "console_url": "<LAB_CONSOLE_BASE_URL>/admin/alerts/agentalert/<id>/change/",
      "folded": {"count": 3, "alerts": [{"id", "type", "severity", "agent_id", "message",
                                         "created_at"}, ...]}
    }

`folded` lists the alerts the channel's rate limit held back since its last delivery
(see alerts/notify.py); `count` is exact, the list stops at FOLDED_LIST_LIMIT entries.
"""

from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from agents.models import IterationStatus, LearningIteration

FOLDED_LIST_LIMIT = 50
MESSAGE_SUMMARY_CHARS = 300


@dataclass(frozen=True)
class SendResult:
    """The outcome of one attempt. `error` is shown to users: no secret, no full URL."""

    ok: bool
    retryable: bool = False
    response_code: int | None = None
    error: str = ""
    retry_after: float | None = None

    @classmethod
    def success(cls, response_code=None):
        return cls(ok=True, response_code=response_code)

    @classmethod
    def retry(cls, error, response_code=None, retry_after=None):
        return cls(ok=False, retryable=True, response_code=response_code, error=error, retry_after=retry_after)

    @classmethod
    def permanent(cls, error, response_code=None):
        return cls(ok=False, retryable=False, response_code=response_code, error=error)


class Transport:
    """The sender for one channel kind. `send` makes one attempt and never raises for a delivery problem."""

    kind = ""

    def send(self, channel, payload, *, delivery_id):
        raise NotImplementedError


def _iso(value):
    return value.isoformat() if value is not None else None


def console_url(alert_id):
    base = settings.LAB_CONSOLE_BASE_URL.rstrip("/")
    return f"{base}/admin/alerts/agentalert/{alert_id}/change/"


def agent_block(agent):
    if agent is None:
        return None
    instrument = agent.instrument
    return {
        "id": str(agent.pk),
        "name": agent.name,
        "status": agent.status,
        "instrument": {"symbol": instrument.symbol, "name": instrument.name},
    }


def latest_metrics(agent):
    """The latest succeeded iteration's validation metrics: one indexed query."""
    if agent is None:
        return None
    row = (
        LearningIteration.objects.filter(agent=agent, status=IterationStatus.SUCCEEDED)
        .order_by("-number")
        .values("number", "score", "finished_at", "validation_metrics")
        .first()
    )
    if row is None:
        return None
    return {
        "iteration": row["number"],
        "score": row["score"],
        "finished_at": _iso(row["finished_at"]),
        "validation": row["validation_metrics"] or {},
    }


def alert_summary(alert):
    """The short form of an alert used in the folded list."""
    return {
        "id": alert.pk,
        "type": alert.alert_type,
        "severity": alert.severity,
        "agent_id": str(alert.agent_id) if alert.agent_id else None,
        "message": alert.message[:MESSAGE_SUMMARY_CHARS],
        "created_at": _iso(alert.created_at),
    }


def build_payload(alert, *, delivery=None, folded=(), folded_count=0):
    agent = alert.agent
    return {
        "event": "alert",
        "delivery": None
        if delivery is None
        else {"id": delivery.pk, "sequence": delivery.sequence, "attempt": delivery.attempts},
        "alert": {
            "id": alert.pk,
            "type": alert.alert_type,
            "severity": alert.severity,
            "message": alert.message,
            "details": alert.details or {},
            "fingerprint": alert.fingerprint,
            "occurrence_count": alert.occurrence_count,
            "acknowledged": alert.acknowledged,
            "created_at": _iso(alert.created_at),
            "last_seen_at": _iso(alert.last_seen_at),
        },
        "agent": agent_block(agent),
        "metrics": latest_metrics(agent),
        "console_url": console_url(alert.pk),
        "folded": {"count": folded_count, "alerts": [alert_summary(a) for a in folded][:FOLDED_LIST_LIMIT]},
    }


def build_test_payload(channel, *, user=None):
    """An INFO alert-like payload that exercises the same rendering and transport."""
    now = _iso(timezone.now())
    who = getattr(user, "username", "") or "the lab"
    return {
        "event": "test",
        "delivery": None,
        "alert": {
            "id": None,
            "type": "TEST",
            "severity": "INFO",
            "message": f"Test notification for channel '{channel.name}', requested by {who}.",
            "details": {"channel_id": channel.pk, "kind": channel.kind},
            "fingerprint": "",
            "occurrence_count": 1,
            "acknowledged": False,
            "created_at": now,
            "last_seen_at": now,
        },
        "agent": None,
        "metrics": None,
        "console_url": f"{settings.LAB_CONSOLE_BASE_URL.rstrip('/')}/admin/",
        "folded": {"count": 0, "alerts": []},
    }


def render_subject(payload):
    alert = payload["alert"]
    agent = payload.get("agent")
    where = f" [{agent['name']}]" if agent else ""
    folded = payload.get("folded", {}).get("count", 0)
    more = f" (+{folded} folded)" if folded else ""
    first_line = (alert["message"] or "").splitlines()[0] if alert["message"] else ""
    subject = f"[Lab {alert['severity']}] {alert['type']}{where}: {first_line}{more}"
    # One line whatever the names hold: a newline in a header is refused (header injection).
    return " ".join(subject.split())[:200]


def render_text(payload):
    """Plain text with the same content as the webhook body."""
    alert = payload["alert"]
    agent = payload.get("agent")
    lines = []
    if payload.get("event") == "test":
        lines.append("This is a test notification from the Agent Learning Lab.")
        lines.append("")
    lines.append(f"{alert['severity']} {alert['type']}")
    lines.append(alert["message"] or "")
    lines.append("")
    if agent:
        instrument = agent["instrument"]
        lines.append(f"Agent: {agent['name']} ({agent['id']}), status {agent['status']}, "
                     f"instrument {instrument['symbol']}")
    else:
        lines.append("Agent: none (lab-wide alert)")
    lines.append(f"Occurrences: {alert['occurrence_count']}; first {alert['created_at']}, last {alert['last_seen_at']}")
    if alert.get("fingerprint"):
        lines.append(f"Fingerprint: {alert['fingerprint']}")
    details = alert.get("details") or {}
    if details:
        lines.append("Details:")
        for key in sorted(details):
            lines.append(f"  {key}: {details[key]}")
    metrics = payload.get("metrics")
    if metrics:
        lines.append(f"Latest metrics: iteration {metrics['iteration']}, score {metrics['score']}")
        for key in sorted(metrics.get("validation") or {}):
            lines.append(f"  {key}: {metrics['validation'][key]}")
    folded = payload.get("folded") or {}
    if folded.get("count"):
        lines.append("")
        lines.append(f"Also held back by this channel's rate limit since its last notification: "
                     f"{folded['count']} alert(s)")
        for item in folded.get("alerts", []):
            agent_part = f" agent {item['agent_id']}" if item.get("agent_id") else ""
            lines.append(f"  - #{item['id']} {item['severity']} {item['type']}{agent_part}: {item['message']}")
        if folded["count"] > len(folded.get("alerts", [])):
            lines.append(f"  ... and {folded['count'] - len(folded['alerts'])} more")
    lines.append("")
    lines.append(f"Open in the console: {payload['console_url']}")
    delivery = payload.get("delivery")
    if delivery:
        lines.append(f"Delivery {delivery['id']} (notification {delivery['sequence']}, attempt {delivery['attempt']})")
    return "\n".join(lines) + "\n"
