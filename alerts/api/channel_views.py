"""Notification channel API: views validate, call alerts.channel_service, render.

Channels are personal: every route is scoped to the caller's own channels (another user's
channel is a 404, superusers included; superusers manage all channels in the admin). The secret
is write-only: it is returned once, as `secret`, in the response that generated it.
"""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from alerts import channel_service
from alerts.api.filters import ChannelFilter, DeliveryFilter
from alerts.channel_service import RATE_LIMIT_MAX, RATE_LIMIT_MIN
from alerts.models import AlertType, ChannelKind, Delivery, NotificationChannel, Severity
from core.filters import filter_or_400, schema_parameters


class ChannelSerializer(serializers.ModelSerializer):
    has_secret = serializers.SerializerMethodField()

    class Meta:
        model = NotificationChannel
        fields = [
            "id", "name", "kind", "target", "min_severity", "alert_types", "enabled", "rate_limit_per_minute",
            "has_secret", "created_at",
        ]
        read_only_fields = fields

    def get_has_secret(self, obj) -> bool:
        return bool(obj.secret)


class ChannelCreatedSerializer(ChannelSerializer):
    # Not read_only: drf-spectacular lists read-only fields as required in a response, and this one
    # is present only sometimes (the serializer only documents responses; views render dicts).
    secret = serializers.CharField(
        required=False,
        help_text="Only in the response that generated it (webhook created or switched without a secret).",
    )

    class Meta(ChannelSerializer.Meta):
        fields = [*ChannelSerializer.Meta.fields, "secret"]
        read_only_fields = ChannelSerializer.Meta.fields


class ChannelWriteSerializer(serializers.Serializer):
    """Types only; the rules (URL guard, email, uniqueness...) live in alerts.channel_service."""

    name = serializers.CharField(max_length=120)
    kind = serializers.ChoiceField(choices=ChannelKind.choices)
    target = serializers.CharField(max_length=500, required=False, allow_blank=True)
    min_severity = serializers.ChoiceField(choices=Severity.choices, required=False)
    alert_types = serializers.ListField(
        child=serializers.ChoiceField(choices=AlertType.choices), required=False, allow_empty=True, max_length=20
    )
    enabled = serializers.BooleanField(required=False)
    secret = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=200, trim_whitespace=False,
        help_text="HMAC key for webhook signatures; omitted = generated and returned once.",
    )
    rate_limit_per_minute = serializers.IntegerField(min_value=RATE_LIMIT_MIN, max_value=RATE_LIMIT_MAX,
                                                     required=False)


class DeliverySerializer(serializers.ModelSerializer):
    alert_type = serializers.CharField(source="alert.alert_type", read_only=True)
    severity = serializers.CharField(source="alert.severity", read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id", "alert", "alert_type", "severity", "sequence", "status", "attempts", "response_code",
            "last_error", "created_at", "updated_at", "delivered_at",
        ]
        read_only_fields = fields

TestResultSerializer = inline_serializer(
    "NotificationTestResult",
    {
        "ok": serializers.BooleanField(),
        "error": serializers.CharField(),
        "response_code": serializers.IntegerField(allow_null=True),
    },
)


def _input(request, *, partial):
    """Unknown fields refused first (serializers drop them), then types coerced."""
    channel_service.check_fields(request.data)
    payload = ChannelWriteSerializer(data=request.data, partial=partial)
    payload.is_valid(raise_exception=True)
    return dict(payload.validated_data)


def _render(channel, new_secret):
    data = ChannelSerializer(channel).data
    if new_secret:
        data["secret"] = new_secret
    return data


class NotificationChannelViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    serializer_class = ChannelSerializer
    queryset = NotificationChannel.objects.none()  # for the schema; get_queryset scopes by caller
    lookup_value_regex = "[0-9]+"
    ordering_fields = ["name", "created_at", "kind"]
    ordering = ["name"]
    filterset_class = ChannelFilter
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return NotificationChannel.objects.filter(owner=self.request.user)

    def get_throttles(self):
        # A test sends a real request out: it counts against the stricter "start work" scope.
        if self.action == "test":
            self.throttle_scope = "start_work"
        return super().get_throttles()

    @extend_schema(request=ChannelWriteSerializer, responses={201: ChannelCreatedSerializer})
    def create(self, request):
        channel, new_secret = channel_service.channel_create(owner=request.user, data=_input(request, partial=False))
        return Response(_render(channel, new_secret), status=status.HTTP_201_CREATED)

    @extend_schema(request=ChannelWriteSerializer, responses=ChannelCreatedSerializer)
    def partial_update(self, request, pk=None):
        channel = self.get_object()
        channel, new_secret = channel_service.channel_update(channel, data=_input(request, partial=True))
        return Response(_render(channel, new_secret))

    def perform_destroy(self, instance):
        channel_service.channel_delete(instance)

    @extend_schema(request=None, responses=TestResultSerializer)
    @action(detail=True, methods=["post"], url_path="test")
    def test(self, request, pk=None):
        """Send a test notification now (synchronously, no retries); 200 with ok true or false."""
        outcome = channel_service.channel_send_test(self.get_object(), user=request.user)
        return Response({"ok": outcome.ok, "error": outcome.error, "response_code": outcome.response_code})

    def filter_queryset(self, queryset):
        # The list's filters (?kind=...) apply to the list only; deliveries filter their own rows.
        return super().filter_queryset(queryset) if self.action == "list" else queryset

    @extend_schema(responses=DeliverySerializer(many=True), parameters=schema_parameters(DeliveryFilter))
    @action(detail=True, methods=["get"], url_path="deliveries", filter_backends=[])
    def deliveries(self, request, pk=None):
        channel = self.get_object()
        qs = Delivery.objects.filter(channel=channel).select_related("alert").order_by("-created_at", "-id")
        qs = filter_or_400(DeliveryFilter, request, qs)
        page = self.paginate_queryset(qs)
        data = DeliverySerializer(page if page is not None else qs, many=True).data
        return self.get_paginated_response(data) if page is not None else Response(data)
