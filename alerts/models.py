"""Alerts raised about agents (or the lab itself), notification channels and deliveries."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class AlertType(models.TextChoices):
    PERFORMANCE_DEGRADATION = "PERFORMANCE_DEGRADATION", "Performance degradation"
    CONVERGENCE = "CONVERGENCE", "Convergence"
    GRADUATION_READY = "GRADUATION_READY", "Graduation ready"
    ERROR = "ERROR", "Error"
    MILESTONE = "MILESTONE", "Milestone"
    SYSTEM = "SYSTEM", "System (lab health)"


class Severity(models.TextChoices):
    INFO = "INFO", "Info"
    WARNING = "WARNING", "Warning"
    CRITICAL = "CRITICAL", "Critical"


SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class AgentAlert(models.Model):
    # Null for lab-wide (SYSTEM) alerts such as a dead scheduler.
    agent = models.ForeignKey(
        "agents.TradingAgent", null=True, blank=True, on_delete=models.CASCADE, related_name="alerts"
    )
    alert_type = models.CharField(max_length=32, choices=AlertType.choices)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    message = models.TextField()
    details = models.JSONField(default=dict, blank=True)
    acknowledged = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # Deduplication: a repeat of an unacknowledged alert with the same agent, type and
    # fingerprint bumps these instead of adding a row.
    fingerprint = models.CharField(max_length=200, default="")
    occurrence_count = models.PositiveIntegerField(default=1)
    last_seen_at = models.DateTimeField(auto_now_add=True)
    last_notified_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen_at", "-id"]
        indexes = [
            models.Index(fields=["agent", "acknowledged"], name="alert_agent_ack_idx"),
            models.Index(fields=["acknowledged", "-last_seen_at"], name="alert_open_recent_idx"),
            models.Index(fields=["alert_type", "severity"], name="alert_type_severity_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["agent", "alert_type", "fingerprint"],
                condition=Q(acknowledged=False, agent__isnull=False),
                name="one_open_alert_per_agent_fingerprint",
            ),
            models.UniqueConstraint(
                fields=["alert_type", "fingerprint"],
                condition=Q(acknowledged=False, agent__isnull=True),
                name="one_open_system_alert_per_fingerprint",
            ),
        ]

    def __str__(self):
        return f"{self.severity} {self.alert_type}: {self.message[:60]}"


class ChannelKind(models.TextChoices):
    LOG = "log", "Log"
    WEBHOOK = "webhook", "Webhook"
    EMAIL = "email", "Email"


class NotificationChannel(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="channels")
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=10, choices=ChannelKind.choices)
    target = models.CharField(max_length=500, blank=True, help_text="Webhook URL or email address.")
    min_severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    alert_types = models.JSONField(default=list, blank=True, help_text="Empty: every type.")
    enabled = models.BooleanField(default=True)
    secret = models.CharField(max_length=200, blank=True, help_text="HMAC secret for webhook signatures.")
    rate_limit_per_minute = models.PositiveIntegerField(default=10)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["owner", "name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="unique_channel_name_per_owner")]

    def __str__(self):
        return f"{self.name} ({self.kind})"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RETRYING = "retrying", "Retrying"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    FOLDED = "folded", "Folded into a later delivery (rate limit)"


class Delivery(models.Model):
    """One notification of one alert occurrence on one channel, with its attempts."""

    alert = models.ForeignKey(AgentAlert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="deliveries")
    # 1 for the first notification; a repeat after the repeat interval is 2, 3...
    sequence = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["alert", "channel", "sequence"], name="one_delivery_per_alert_channel_seq"),
        ]
        indexes = [models.Index(fields=["channel", "created_at"], name="delivery_channel_time_idx")]

    def __str__(self):
        return f"delivery {self.pk} of alert {self.alert_id} ({self.status})"


class Heartbeat(models.Model):
    """The last sign of life of a lab component, written by alerts.heartbeat.

    component: "beat" (the beat process publishing its heartbeat task), "workers" (any worker:
    the latest of the per-worker rows) or "worker:<hostname>". `alerted` remembers that the
    stale-scheduler alert of this component was raised and its recovery not yet announced.
    """

    component = models.CharField(max_length=200, unique=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    # When the health check first looked for a component never seen (grace before alerting).
    watched_since = models.DateTimeField(null=True, blank=True)
    alerted = models.BooleanField(default=False)
    alerted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["component"]

    def __str__(self):
        return f"{self.component} last seen {self.last_seen}"
