"""The log transport: one structured line per alert on the `alerts.notifications` logger.

`log_alert` is the always-on line written for every notified alert, with or without
channel rows; `LogTransport` is what a user's own `kind=log` channel row delivers through.
The structured `extra` carries alert_id, agent_id, alert_type and severity, so the JSON log
format (LAB_LOG_FORMAT=json) shows them as fields.
"""

import logging

from alerts.transports.base import SendResult, Transport

logger = logging.getLogger("alerts.notifications")


def alert_extra(alert, **more):
    return {
        "alert_id": alert.pk,
        "agent_id": str(alert.agent_id) if alert.agent_id else None,
        "alert_type": alert.alert_type,
        "severity": alert.severity,
        "fingerprint": alert.fingerprint,
        **more,
    }


def log_alert(alert, *, sequence):
    logger.info(
        "alert %s %s %s (agent %s, notification %s): %s",
        alert.pk, alert.severity, alert.alert_type, alert.agent_id or "-", sequence, alert.message,
        extra=alert_extra(alert, sequence=sequence, occurrence_count=alert.occurrence_count),
    )


class LogTransport(Transport):
    kind = "log"

    def send(self, channel, payload, *, delivery_id):
        alert = payload["alert"]
        agent = payload.get("agent") or {}
        logger.info(
            "notification via channel %s (%s): %s %s: %s (folded %s)",
            channel.pk, channel.name, alert["severity"], alert["type"], alert["message"],
            (payload.get("folded") or {}).get("count", 0),
            extra={
                "alert_id": alert["id"],
                "agent_id": agent.get("id"),
                "alert_type": alert["type"],
                "severity": alert["severity"],
                "channel_id": channel.pk,
                "delivery_id": delivery_id,
            },
        )
        return SendResult.success()
