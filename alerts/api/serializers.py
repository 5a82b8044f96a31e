from rest_framework import serializers

from alerts.models import AgentAlert, AlertType, Severity
from core.strict import RejectUnknownFieldsMixin

MAX_ID = 2**63 - 1


class AlertSerializer(serializers.ModelSerializer):
    agent = serializers.UUIDField(source="agent_id", read_only=True, allow_null=True)
    agent_name = serializers.SerializerMethodField()
    acknowledged_by = serializers.SerializerMethodField()

    class Meta:
        model = AgentAlert
        fields = [
            "id", "agent", "agent_name", "alert_type", "severity", "message", "details", "fingerprint",
            "occurrence_count", "acknowledged", "acknowledged_by", "acknowledged_at", "created_at",
            "last_seen_at", "last_notified_at",
        ]
        read_only_fields = fields

    def get_agent_name(self, obj) -> str | None:
        return obj.agent.name if obj.agent_id else None

    def get_acknowledged_by(self, obj) -> str | None:
        return obj.acknowledged_by.get_username() if obj.acknowledged_by_id else None


class BulkAcknowledgeSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """Either the alert ids, or filters (agent, type, severity, min_severity, since, until), or all=true."""

    # Bounded above by the id column (bigint): a larger id is a 400, not a database overflow.
    ids = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=MAX_ID), required=False,
                                max_length=1000, allow_empty=False)
    agent = serializers.UUIDField(required=False)
    type = serializers.ListField(child=serializers.ChoiceField(choices=AlertType.choices), required=False,
                                 allow_empty=False)
    severity = serializers.ListField(child=serializers.ChoiceField(choices=Severity.choices), required=False,
                                     allow_empty=False)
    min_severity = serializers.ChoiceField(choices=Severity.choices, required=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    all = serializers.BooleanField(required=False, default=False)

    FILTERS = ("agent", "type", "severity", "min_severity", "since", "until")

    def to_internal_value(self, data):
        # A single value is accepted where a list is expected: {"type": "ERROR"}. (Only for an
        # object: a list body has .copy() too, and is refused by the serializer as it is.)
        if isinstance(data, dict) and not hasattr(data, "getlist"):
            data = data.copy()
            for key in ("type", "severity"):
                if isinstance(data.get(key), str):
                    data[key] = [data[key]]
        return super().to_internal_value(data)

    def validate(self, attrs):
        has_filters = any(key in attrs for key in self.FILTERS)
        if "ids" in attrs and (has_filters or attrs["all"]):
            raise serializers.ValidationError({"ids": "give either ids or filters / all, not both"})
        if "ids" not in attrs and not has_filters and not attrs["all"]:
            raise serializers.ValidationError(
                {"ids": "give the alert ids, at least one filter, or all=true to acknowledge every open alert"}
            )
        return attrs


class BulkAcknowledgeResultSerializer(serializers.Serializer):
    acknowledged = serializers.IntegerField()
    not_found = serializers.ListField(child=serializers.IntegerField())
