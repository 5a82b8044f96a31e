"""Agents API: agents, iterations, refinements, versions, activity, performance.

Views validate input, call one service and render. Each user sees the agents
agents.selectors.agents_visible_to gives them; another owner's agent is a 404.
"""

from django.db.models import Count, Max, Min
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from agents.api import filters
from agents.api.approval_views import ApprovalActionsMixin
from agents.api.bar_views import BarUploadMixin
from agents.api.continuous_views import ContinuousActionsMixin
from agents.api.schedule_views import ScheduleActionsMixin
from agents.api.serializers import (
    ActivitySerializer,
    AgentCreateSerializer,
    AgentSerializer,
    AgentUpdateSerializer,
    DecisionSerializer,
    InstrumentSerializer,
    IterationSerializer,
    RefinementSerializer,
    StrategySerializer,
    VersionSerializer,
)
from agents.evaluation.headline import annotate_headline
from agents.models import (
    ActivityLog,
    Instrument,
    IterationTrigger,
    LearningIteration,
    Refinement,
    StrategyVersion,
    TradingAgent,
)
from agents.selectors import agents_visible_to
from agents.services import agents as agent_service
from agents.services import decisions, dispatch, learning, manual_approval, performance
from agents.strategies.registry import listed_templates
from core.filters import filter_or_400, params_or_400, schema_parameters


class LearningAgentViewSet(
    ApprovalActionsMixin,
    ContinuousActionsMixin,
    ScheduleActionsMixin,
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    serializer_class = AgentSerializer
    filterset_class = filters.AgentFilter
    ordering_fields = ["name", "created_at", "updated_at", "status"]
    ordering = ["name"]
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return TradingAgent.objects.none()
        qs = agents_visible_to(self.request.user).select_related("owner", "instrument", "current_version")
        qs = qs.prefetch_related("related_instruments")
        return annotate_headline(qs, "current_version")

    def filter_queryset(self, queryset):
        # The list's filters (?status=...) must not apply to one agent's nested routes, where
        # the same names filter iterations or refinements (filter_or_400 there).
        return super().filter_queryset(queryset) if self.action == "list" else queryset

    # Routes that start work (an iteration now, or a loop of them) share the stricter scope.
    START_WORK_ACTIONS = ("iterations", "continuous_start")

    def get_throttles(self):
        if self.action in self.START_WORK_ACTIONS and self.request.method == "POST":
            self.throttle_scope = "start_work"
        return super().get_throttles()

    def _paginate(self, queryset, serializer_class):
        page = self.paginate_queryset(queryset)
        data = serializer_class(page if page is not None else queryset, many=True).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    @extend_schema(request=AgentCreateSerializer, responses={201: AgentSerializer})
    def create(self, request):
        payload = AgentCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        agent = agent_service.agent_create(owner=request.user, **payload.validated_data)
        return Response(AgentSerializer(agent).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=AgentUpdateSerializer, responses=AgentSerializer)
    def partial_update(self, request, pk=None):
        agent = self.get_object()
        payload = AgentUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        agent = agent_service.agent_update(agent, actor=request.user, **payload.validated_data)
        return Response(AgentSerializer(agent).data)

    def perform_destroy(self, instance):
        agent_service.agent_delete(instance, actor=self.request.user)

    # --- iterations ----------------------------------------------------------------------
    @extend_schema(methods=["GET"], responses=IterationSerializer(many=True),
                   parameters=schema_parameters(filters.IterationFilter))
    @extend_schema(
        methods=["POST"], request=None, responses={202: IterationSerializer, 200: IterationSerializer},
        parameters=schema_parameters(filters.IterationStartParams),
    )
    @action(detail=True, methods=["get", "post"], url_path="iterations",
            filter_backends=[])
    def iterations(self, request, pk=None):
        agent = self.get_object()
        if request.method == "GET":
            qs = LearningIteration.objects.filter(agent=agent).select_related("version", "requested_by")
            qs = filter_or_400(filters.IterationFilter, request, qs)
            return self._paginate(qs.order_by("-number"), IterationSerializer)
        if params_or_400(filters.IterationStartParams, request).get("wait"):
            iteration, _created = learning.iteration_run_now(
                agent, trigger=IterationTrigger.API, requested_by=request.user
            )
            return Response(IterationSerializer(iteration).data, status=status.HTTP_200_OK)
        iteration, _created = dispatch.iteration_start(agent, trigger=IterationTrigger.API, requested_by=request.user)
        return Response(IterationSerializer(iteration).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=IterationSerializer)
    @action(detail=True, methods=["get"], url_path=r"iterations/(?P<iteration_id>[0-9]+)")
    def iteration_detail(self, request, pk=None, iteration_id=None):
        agent = self.get_object()
        iteration = get_object_or_404(
            LearningIteration.objects.select_related("version", "requested_by"), agent=agent, pk=iteration_id
        )
        return Response(IterationSerializer(iteration).data)

    # --- refinements ---------------------------------------------------------------------
    @extend_schema(responses=RefinementSerializer(many=True),
                   parameters=schema_parameters(filters.RefinementFilter))
    @action(detail=True, methods=["get"], url_path="refinements", filter_backends=[])
    def refinements(self, request, pk=None):
        agent = self.get_object()
        qs = Refinement.objects.filter(agent=agent).select_related("iteration", "decided_by", "produced_version")
        qs = filter_or_400(filters.RefinementFilter, request, qs)
        return self._paginate(qs.order_by("-id"), RefinementSerializer)

    @extend_schema(request=DecisionSerializer, responses=RefinementSerializer)
    # (?:...) inside the group: the schema's pattern is then ^(?:approve|reject)$, not ^approve|reject$.
    @action(detail=True, methods=["post"],
            url_path=r"refinements/(?P<refinement_id>[0-9]+)/(?P<decision>(?:approve|reject))")
    def refinement_decide(self, request, pk=None, refinement_id=None, decision=None):
        agent = self.get_object()
        refinement = get_object_or_404(Refinement.objects.select_related("agent"), agent=agent, pk=refinement_id)
        payload = DecisionSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        service = (manual_approval.refinement_approve_with_evidence if decision == "approve"
                   else decisions.refinement_reject)
        refinement = service(refinement, actor=request.user, reason=payload.validated_data["reason"])
        return Response(RefinementSerializer(refinement).data)

    @extend_schema(request=DecisionSerializer, responses={201: VersionSerializer})
    @action(detail=True, methods=["post"], url_path="refinements/apply")
    def refinements_apply(self, request, pk=None):
        agent = self.get_object()
        payload = DecisionSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        version = decisions.refinements_apply(agent, actor=request.user, reason=payload.validated_data["reason"])
        return Response(VersionSerializer(version).data, status=status.HTTP_201_CREATED)

    # --- versions ------------------------------------------------------------------------
    @extend_schema(responses=VersionSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="versions", filter_backends=[])
    def versions(self, request, pk=None):
        agent = self.get_object()
        qs = annotate_headline(StrategyVersion.objects.filter(agent=agent), "pk").select_related(
            "parent", "created_by").order_by("-number")
        return self._paginate(qs, VersionSerializer)

    @extend_schema(request=DecisionSerializer, responses={201: VersionSerializer})
    @action(detail=True, methods=["post"], url_path=r"versions/(?P<version_id>[0-9]+)/rollback")
    def version_rollback(self, request, pk=None, version_id=None):
        agent = self.get_object()
        version = get_object_or_404(StrategyVersion, agent=agent, pk=version_id)
        payload = DecisionSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        new = decisions.version_rollback(agent, version, actor=request.user, reason=payload.validated_data["reason"])
        return Response(VersionSerializer(new).data, status=status.HTTP_201_CREATED)

    # --- activity and performance --------------------------------------------------------
    @extend_schema(responses=ActivitySerializer(many=True),
                   parameters=schema_parameters(filters.ActivityFilter))
    @action(detail=True, methods=["get"], url_path="activity", filter_backends=[])
    def activity(self, request, pk=None):
        agent = self.get_object()
        qs = filter_or_400(filters.ActivityFilter, request, ActivityLog.objects.filter(agent=agent))
        return self._paginate(qs.order_by("-created_at", "-id"), ActivitySerializer)

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"], url_path="performance")
    def performance(self, request, pk=None):
        return Response(performance.agent_performance(self.get_object()))


class StrategyViewSet(viewsets.GenericViewSet):
    """The strategy templates and their parameter schemas (bounds, defaults)."""

    serializer_class = StrategySerializer
    pagination_class = None
    filter_backends = []

    def get_queryset(self):
        return listed_templates()

    @extend_schema(responses=StrategySerializer(many=True))
    def list(self, request):
        return Response(
            [{"key": t.key, "name": t.name, "description": t.description, "params": t.schema(),
              "needs_intrabar_range": t.needs_intrabar_range}
             for t in listed_templates()]
        )


class InstrumentViewSet(BarUploadMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = InstrumentSerializer
    pagination_class = None
    queryset = Instrument.objects.annotate(
        bar_count=Count("bars"), first_bar=Min("bars__timestamp"), last_bar=Max("bars__timestamp")
    ).order_by("symbol")


__all__ = ["InstrumentViewSet", "LearningAgentViewSet", "StrategyViewSet"]
