"""Alert API: views validate, call one alerts service, render.

Alerts are scoped by agents.selectors: owners see their agents' alerts (another owner's agent or
alert is a 404); a superuser sees every alert, lab-wide (agent-less) ones included.
"""

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response

from agents.selectors import agents_visible_to, owned_rows
from alerts import services
from alerts.api.filters import AlertFilter
from alerts.api.serializers import AlertSerializer, BulkAcknowledgeResultSerializer, BulkAcknowledgeSerializer
from alerts.models import SEVERITY_RANK, AgentAlert

AGENT_ID = OpenApiParameter("agent_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
ALERT_ID = OpenApiParameter("alert_id", OpenApiTypes.INT, OpenApiParameter.PATH)


def visible_alerts(user):
    return owned_rows(AgentAlert.objects.select_related("agent", "acknowledged_by"), user)


class _AlertListBase(generics.ListAPIView):
    queryset = AgentAlert.objects.none()  # for the schema; get_queryset scopes by caller
    serializer_class = AlertSerializer
    filterset_class = AlertFilter
    ordering_fields = ["last_seen_at", "created_at", "occurrence_count", "alert_type"]
    ordering = ["-last_seen_at", "-id"]


class AlertListView(_AlertListBase):
    """Open (unacknowledged) alerts of the caller's agents; ?acknowledged=true|false overrides."""

    @extend_schema(operation_id="learning_agents_alerts_all_list")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return AgentAlert.objects.none()
        qs = visible_alerts(self.request.user)
        if "acknowledged" not in self.request.query_params:
            qs = qs.filter(acknowledged=False)
        return qs


class AgentAlertListView(_AlertListBase):
    """Every alert of one agent (acknowledged ones included unless ?acknowledged=false)."""

    @extend_schema(parameters=[AGENT_ID], operation_id="learning_agents_agent_alerts_list")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return AgentAlert.objects.none()
        agent = get_object_or_404(agents_visible_to(self.request.user), pk=self.kwargs["agent_id"])
        return AgentAlert.objects.filter(agent=agent).select_related("agent", "acknowledged_by")


class _OneAlertMixin:
    queryset = AgentAlert.objects.none()  # for the schema; get_object scopes by caller
    serializer_class = AlertSerializer
    filter_backends = []
    pagination_class = None

    def get_object(self):
        agent = get_object_or_404(agents_visible_to(self.request.user), pk=self.kwargs["agent_id"])
        return get_object_or_404(
            AgentAlert.objects.select_related("agent", "acknowledged_by"), agent=agent, pk=self.kwargs["alert_id"]
        )


@extend_schema(parameters=[AGENT_ID, ALERT_ID])
class AgentAlertDetailView(_OneAlertMixin, generics.RetrieveDestroyAPIView):
    def perform_destroy(self, instance):
        services.alert_delete(instance, user=self.request.user)


@extend_schema(parameters=[AGENT_ID, ALERT_ID])
class AgentAlertAcknowledgeView(_OneAlertMixin, generics.GenericAPIView):
    @extend_schema(request=None, responses=AlertSerializer, operation_id="learning_agents_agent_alert_acknowledge")
    def post(self, request, *args, **kwargs):
        alert = services.alert_acknowledge(self.get_object(), user=request.user)
        return Response(AlertSerializer(alert).data)


class BulkAcknowledgeView(generics.GenericAPIView):
    """Acknowledge the caller's open alerts by ids, or by filters, or all of them (all=true)."""

    serializer_class = BulkAcknowledgeSerializer
    filter_backends = []
    pagination_class = None

    @extend_schema(request=BulkAcknowledgeSerializer, responses=BulkAcknowledgeResultSerializer,
                   operation_id="learning_agents_alerts_bulk_acknowledge")
    def post(self, request, *args, **kwargs):
        payload = BulkAcknowledgeSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        visible = visible_alerts(request.user)
        not_found = []
        if "ids" in data:
            ids = set(data["ids"])
            found = set(visible.filter(pk__in=ids).values_list("pk", flat=True))
            not_found = sorted(ids - found)
            target = visible.filter(pk__in=found)
        else:
            target = _filtered(visible, data)
        count = services.alerts_acknowledge(target, user=request.user)
        return Response({"acknowledged": count, "not_found": not_found}, status=status.HTTP_200_OK)


def _filtered(qs, data):
    if "agent" in data:
        qs = qs.filter(agent_id=data["agent"])
    if "type" in data:
        qs = qs.filter(alert_type__in=data["type"])
    if "severity" in data:
        qs = qs.filter(severity__in=data["severity"])
    if "min_severity" in data:
        rank = SEVERITY_RANK[data["min_severity"]]
        qs = qs.filter(severity__in=[s for s, r in SEVERITY_RANK.items() if r >= rank])
    if "since" in data:
        qs = qs.filter(last_seen_at__gte=data["since"])
    if "until" in data:
        qs = qs.filter(last_seen_at__lt=data["until"])
    return qs
