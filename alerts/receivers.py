"""Receivers of the domain signals of `agents` and of alerts' own `alert_raised` (connected in
AlertsConfig.ready()).

Each only calls a service of alerts. They run after the sender's transaction committed; a
failure is logged and never propagates, so it can fail neither the iteration that was
announced nor the receivers of other apps, nor the next agent's announcement.
"""

import logging

from alerts import monitor, notify

logger = logging.getLogger(__name__)


def on_iteration_finished(sender, agent_id=None, iteration_id=None, status=None, **kwargs):
    try:
        monitor.check_after_iteration(agent_id, iteration_id)
    except Exception:
        logger.exception("performance monitor failed for iteration %s of agent %s (%s)", iteration_id, agent_id,
                         status)


def on_learning_converged(sender, agent_id=None, reason="", details=None, **kwargs):
    try:
        monitor.on_converged(agent_id, reason, details)
    except Exception:
        logger.exception("convergence alert failed for agent %s", agent_id)


def on_alert_raised(sender, alert_id=None, **kwargs):
    if not kwargs.get("notify"):
        return  # a repeat within the repeat interval: counted, not sent again
    try:
        notify.alert_notify(alert_id)
    except Exception:
        logger.exception("notifying alert %s failed", alert_id)
