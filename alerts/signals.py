"""The domain signal of alerts: `alert_raised`, sent after the raising transaction commits.

Sent for every raise: a new alert, and a repeat folded into an open one (its severity may have
escalated). Keyword arguments: alert_id, agent_id (None for a lab-wide alert), alert_type,
severity (the alert's severity after the raise), created (a new row) and notify (a
notification is due: new, escalated, or repeated after LAB_ALERT_REPEAT_INTERVAL_MINUTES).

Subscribers connect in their AppConfig.ready(): alerts' own notifier (alerts.receivers) and
graduation's demotion on a CRITICAL performance degradation, so the demotion follows the alert
itself, whatever the order of INSTALLED_APPS or of the receivers of agents' signals.
"""

from django.dispatch import Signal

alert_raised = Signal()
