import django_filters

from alerts.models import SEVERITY_RANK, AgentAlert, AlertType, Delivery, DeliveryStatus, NotificationChannel, Severity
from core.filters import LabFilterSet, StrictBooleanFilter, UTCIsoDateTimeFilter


class AlertFilter(LabFilterSet):
    """?type=ERROR&type=MILESTONE, ?severity=..., ?min_severity=WARNING, ?acknowledged=false,
    ?since/?until (ISO 8601, on last_seen_at: an alert still recurring counts as recent), ?agent=<id>."""

    type = django_filters.MultipleChoiceFilter(field_name="alert_type", choices=AlertType.choices)
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    min_severity = django_filters.ChoiceFilter(choices=Severity.choices, method="filter_min_severity")
    acknowledged = StrictBooleanFilter()
    since = UTCIsoDateTimeFilter(field_name="last_seen_at", lookup_expr="gte")
    until = UTCIsoDateTimeFilter(field_name="last_seen_at", lookup_expr="lt")
    agent = django_filters.UUIDFilter(field_name="agent_id")

    class Meta:
        model = AgentAlert
        fields = ["type", "severity", "min_severity", "acknowledged", "since", "until", "agent"]

    def filter_min_severity(self, queryset, name, value):
        allowed = [s for s, rank in SEVERITY_RANK.items() if rank >= SEVERITY_RANK[value]]
        return queryset.filter(severity__in=allowed)


class DeliveryFilter(LabFilterSet):
    status = django_filters.ChoiceFilter(choices=DeliveryStatus.choices)

    class Meta:
        model = Delivery
        fields = ["status"]


class ChannelFilter(LabFilterSet):
    class Meta:
        model = NotificationChannel
        fields = ["kind", "enabled"]
