"""What alerts contributes to /health and /metrics (registered from AlertsConfig.ready() into
config.observability.registry): the beat and workers health parts, the open alerts and heartbeat
ages gauges, and the count of delivery attempts."""

from django.db.models import Count
from django.utils import timezone
from prometheus_client.metrics_core import GaugeMetricFamily

from alerts import heartbeat
from alerts.models import AgentAlert, Delivery, DeliveryStatus, Heartbeat, Severity
from config.observability import metrics, registry

COUNTED_OUTCOMES = (DeliveryStatus.SUCCEEDED, DeliveryStatus.RETRYING, DeliveryStatus.FAILED)


def delivery_attempted(delivery_id):
    """Count the outcome of the attempt that just ran, read back from the Delivery row."""
    row = Delivery.objects.filter(pk=delivery_id).values("status", "channel__kind").first()
    if row and row["status"] in COUNTED_OUTCOMES:
        metrics.delivery_counted(row["channel__kind"], row["status"])


def scheduler_health(*, now, check_alerts):
    """The beat and workers parts; `check_alerts` also raises the stale alert / recovery (once)."""
    if check_alerts:
        return heartbeat.scheduler_health_check(now=now)
    return heartbeat.scheduler_status(now=now)


def collect_gauges():
    alerts = GaugeMetricFamily("lab_alerts_open", "Unacknowledged alerts by severity.", labels=["severity"])
    open_counts = dict(
        AgentAlert.objects.filter(acknowledged=False).order_by().values_list("severity").annotate(n=Count("pk"))
    )
    for severity in Severity.values:
        alerts.add_metric([severity], open_counts.get(severity, 0))
    ages = GaugeMetricFamily("lab_heartbeat_age_seconds", "Seconds since the last heartbeat of beat / any worker.",
                             labels=["component"])
    now = timezone.now()
    for component, seen in Heartbeat.objects.filter(component__in=heartbeat.COMPONENTS).values_list(
        "component", "last_seen"
    ):
        if seen is not None:
            ages.add_metric([component], max((now - seen).total_seconds(), 0.0))
    yield from (alerts, ages)


def register_observability():
    registry.register_health_check("scheduler", heartbeat.COMPONENTS, scheduler_health)
    registry.register_gauges("alerts", collect_gauges)
