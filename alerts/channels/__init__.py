"""Notification channels: log, webhook, email. Each makes one attempt per call to `send`."""

from alerts.channels.base import Channel, SendResult
from alerts.channels.email import EmailChannel
from alerts.channels.log import LogChannel
from alerts.channels.webhook import WebhookChannel

CHANNELS = {c.kind: c for c in (LogChannel(), WebhookChannel(), EmailChannel())}


def get_channel(kind):
    try:
        return CHANNELS[kind]
    except KeyError:
        raise ValueError(f"unknown channel kind {kind!r}")


__all__ = ["CHANNELS", "Channel", "SendResult", "get_channel"]
