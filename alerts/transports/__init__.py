"""Transports: the senders behind a ``NotificationChannel`` row, one per channel kind (log,
webhook, email). Each makes one attempt per call to `send`."""

from alerts.transports.base import SendResult, Transport
from alerts.transports.email import EmailTransport
from alerts.transports.log import LogTransport
from alerts.transports.webhook import WebhookTransport

TRANSPORTS = {c.kind: c for c in (LogTransport(), WebhookTransport(), EmailTransport())}


def transport_for(kind):
    try:
        return TRANSPORTS[kind]
    except KeyError:
        raise ValueError(f"unknown channel kind {kind!r}")


__all__ = ["TRANSPORTS", "SendResult", "Transport", "transport_for"]
