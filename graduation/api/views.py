"""Graduation API: views validate, call one graduation service, render.

Agents are scoped by agents.selectors.agents_visible_to (another owner's agent is a 404).
"""

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.selectors import agents_visible_to
from core.filters import params_or_400, schema_parameters
from core.parsers import LabJSONParser
from graduation import challenger, criteria, services
from graduation.api.filters import PaperParams, VersionAtParams
from graduation.api.serializers import (
    ChallengerStateSerializer,
    CriteriaSerializer,
    CriteriaSettingsSerializer,
    DemoteSerializer,
    DismissSerializer,
    EligibilitySerializer,
    GraduateSerializer,
    GraduationEventSerializer,
    GraduationSwitchesSerializer,
    PaperAccountSerializer,
    PaperAccountsSerializer,
    PaperSummarySerializer,
    PromoteSerializer,
    VersionAtSerializer,
)
from graduation.eligibility import eligibility
from graduation.models import AccountRole, GraduationEvent
from graduation.trading.summary import paper_summary

AGENT_ID = OpenApiParameter("agent_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class _AgentView(APIView):
    def agent(self):
        return get_object_or_404(agents_visible_to(self.request.user), pk=self.kwargs["agent_id"])


@extend_schema(parameters=[AGENT_ID])
class EligibilityView(_AgentView):
    @extend_schema(responses=EligibilitySerializer, summary="Eligibility for the next status, criterion by criterion")
    def get(self, request, agent_id):
        return Response(EligibilitySerializer(eligibility(self.agent())).data)


@extend_schema(parameters=[AGENT_ID])
class GraduateView(_AgentView):
    # Graduating opens a paper account (reads bars, runs the strategy): the stricter scope.
    throttle_scope = "start_work"

    @extend_schema(
        request=GraduateSerializer, responses={201: GraduationEventSerializer},
        summary="Move one step up: learning -> paper trading, or paper -> live trading",
        examples=[OpenApiExample("To live", value={"reason": "60 paper bars, Sharpe 1.2", "confirm": True},
                                 request_only=True)],
    )
    def post(self, request, agent_id):
        """learning -> paper_trading when eligible. paper_trading -> live_trading only with the
        graduation.approve_live_trading permission (403), confirm=true and a reason (400), and
        when eligible on the paper record (409 listing the failed criteria)."""
        agent = self.agent()
        payload = GraduateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        event = services.agent_graduate(agent, actor=request.user, **payload.validated_data)
        return Response(GraduationEventSerializer(event).data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[AGENT_ID])
class DemoteView(_AgentView):
    @extend_schema(request=DemoteSerializer, responses={201: GraduationEventSerializer},
                   summary="Back to learning (a reason is required); closes the paper account")
    def post(self, request, agent_id):
        agent = self.agent()
        payload = DemoteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        event = services.agent_demote(agent, actor=request.user, reason=payload.validated_data.get("reason", ""))
        return Response(GraduationEventSerializer(event).data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[AGENT_ID])
class HistoryView(generics.ListAPIView):
    """Graduations, demotions and re-pins of the traded version, newest first."""

    queryset = GraduationEvent.objects.none()  # for the schema; get_queryset scopes by caller
    serializer_class = GraduationEventSerializer
    filter_backends = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return GraduationEvent.objects.none()
        agent = get_object_or_404(agents_visible_to(self.request.user), pk=self.kwargs["agent_id"])
        return services.history(agent)


@extend_schema(parameters=[AGENT_ID])
class VersionAtView(_AgentView):
    @extend_schema(
        parameters=schema_parameters(VersionAtParams), responses=VersionAtSerializer,
        summary="Which version the agent traded, and in which status, at a time",
    )
    def get(self, request, agent_id):
        agent = self.agent()  # another owner's agent is a 404 whatever the parameters
        when = params_or_400(VersionAtParams, request).get("at") or timezone.now()
        answer = services.version_at(agent, when)
        version = answer["version"]
        return Response(VersionAtSerializer({
            "at": when, "status": answer["status"], "trading": answer["trading"],
            "version": version.number if version else None, "event": answer["event"],
        }).data)


@extend_schema(parameters=[AGENT_ID])
class CriteriaView(_AgentView):
    parser_classes = [LabJSONParser]

    @extend_schema(responses=CriteriaSettingsSerializer, summary="Graduation criteria in force, overrides, defaults")
    def get(self, request, agent_id):
        return Response(CriteriaSettingsSerializer(criteria.criteria_settings(self.agent())).data)

    @extend_schema(
        request=CriteriaSerializer, responses=CriteriaSettingsSerializer,
        summary="Replace the agent's overrides ({} returns to the lab defaults)",
        examples=[OpenApiExample("Stricter", value={"min_iterations": 20, "min_sharpe_ratio": 1.0,
                                                    "min_fold_pass": 4}, request_only=True)],
    )
    def put(self, request, agent_id):
        """Names every bad criterion at once (booleans are not numbers, unknown names refused) and
        changes nothing on bad input."""
        agent = criteria.criteria_set(self.agent(), request.data, actor=request.user)
        return Response(CriteriaSettingsSerializer(criteria.criteria_settings(agent)).data)

    @extend_schema(
        request=CriteriaSerializer(partial=True), responses=CriteriaSettingsSerializer,
        summary="Change some overrides, keep the others",
    )
    def patch(self, request, agent_id):
        """The criteria sent replace those overrides; the other overrides stay."""
        agent = criteria.criteria_set(self.agent(), request.data, actor=request.user, partial=True)
        return Response(CriteriaSettingsSerializer(criteria.criteria_settings(agent)).data)


@extend_schema(parameters=[AGENT_ID])
class SwitchesView(_AgentView):
    parser_classes = [LabJSONParser]

    def _render(self, agent):
        return Response(GraduationSwitchesSerializer(
            {"auto_graduate": agent.auto_graduate, "auto_apply_in_paper": agent.auto_apply_in_paper}).data)

    @extend_schema(responses=GraduationSwitchesSerializer, summary="Automatic graduation and paper re-pin switches")
    def get(self, request, agent_id):
        return self._render(self.agent())

    @extend_schema(request=GraduationSwitchesSerializer, responses=GraduationSwitchesSerializer,
                   summary="Turn automatic graduation (to paper only) or automatic paper re-pins on or off")
    def patch(self, request, agent_id):
        return self._render(services.switches_set(self.agent(), request.data, actor=request.user))


@extend_schema(parameters=[AGENT_ID])
class PaperView(_AgentView):
    @extend_schema(
        parameters=schema_parameters(PaperParams), responses=PaperSummarySerializer,
        summary="Paper account, recent fills and trades, equity curve, metrics",
    )
    def get(self, request, agent_id):
        agent = self.agent()
        summary = paper_summary(agent, **params_or_400(PaperParams, request))
        return Response(PaperSummarySerializer(summary).data)


@extend_schema(parameters=[AGENT_ID])
class PaperAccountsView(_AgentView):
    @extend_schema(
        parameters=schema_parameters(PaperParams), responses=PaperAccountsSerializer,
        summary="Both accounts: the champion (traded) and the challenger's shadow paper account",
    )
    def get(self, request, agent_id):
        agent = self.agent()
        params = params_or_400(PaperParams, request)
        return Response(PaperAccountsSerializer({
            "champion": paper_summary(agent, **params, role=AccountRole.CHAMPION),
            "challenger": paper_summary(agent, **params, role=AccountRole.CHALLENGER),
        }).data)


@extend_schema(parameters=[AGENT_ID])
class ChallengerView(_AgentView):
    @extend_schema(responses=ChallengerStateSerializer,
                   summary="Champion / challenger: the paired Sharpe test on the common bars and its verdict")
    def get(self, request, agent_id):
        return Response(ChallengerStateSerializer(challenger.challenger_state(self.agent())).data)


@extend_schema(parameters=[AGENT_ID])
class ChallengerPromoteView(_AgentView):
    parser_classes = [LabJSONParser]

    @extend_schema(request=PromoteSerializer, responses={201: GraduationEventSerializer},
                   summary="Re-pin the traded version to a ready challenger")
    def post(self, request, agent_id):
        """409 unless the test is ready (the verdict says what is missing); on a live trading agent
        403 without the graduation.approve_live_trading permission."""
        agent = self.agent()
        PromoteSerializer(data=request.data or {}).is_valid(raise_exception=True)
        event = challenger.challenger_promote(agent, actor=request.user)
        return Response(GraduationEventSerializer(event).data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[AGENT_ID])
class ChallengerDismissView(_AgentView):
    parser_classes = [LabJSONParser]

    @extend_schema(request=DismissSerializer, responses=PaperAccountSerializer,
                   summary="Close the challenger's shadow account without switching (a reason is required)")
    def post(self, request, agent_id):
        agent = self.agent()
        payload = DismissSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        account = challenger.challenger_dismiss(agent, actor=request.user, reason=payload.validated_data.get("reason"))
        return Response(PaperAccountSerializer(account).data)
