"""Auto-approval endpoints, mixed into the agents viewset.

`POST .../auto-approve/enable|disable`, `GET|PUT|PATCH .../approval-thresholds`. The service
validates (booleans are not numbers, unknown names refused, every error named at once); the
serializers here type the OpenAPI schema and shape the answers.
"""

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from agents.api.rule_fields import rules_serializer
from agents.services import approval, approval_gate
from core.parsers import LabJSONParser

ApprovalThresholdsSerializer = rules_serializer(
    "ApprovalThresholds", approval_gate.APPROVAL_RULES, required=approval_gate.REQUIRED_KEYS,
    doc="The approval gate's rules (agents.services.approval_gate): fold rules on the selection folds, "
        "min_dsr and max_improvement_p on the selection evidence, max_test_shortfall on the sealed window.",
)


class ApprovalSettingsSerializer(serializers.Serializer):
    auto_approve_enabled = serializers.BooleanField()
    thresholds = ApprovalThresholdsSerializer(help_text="The thresholds in force: defaults overlaid with the agent's.")
    defaults = ApprovalThresholdsSerializer()
    applies_automatically = serializers.BooleanField(
        help_text="False when disabled, or when the agent's status forbids automatic changes (live trading)."
    )
    note = serializers.CharField(help_text="Why refinements are not applied automatically, if they are not.")


_EXAMPLE = OpenApiExample(
    "Thresholds",
    value={"min_win_rate": 0.45, "min_sharpe_ratio": 0.8, "min_signals": 10, "min_total_return": 0.0,
           "require_improvement": True, "max_drawdown": 0.25},
    request_only=True,
)


class ApprovalActionsMixin:
    """For LearningAgentViewSet: needs `get_object()` restricted to the user's agents."""

    def _approval_response(self, agent):
        return Response(ApprovalSettingsSerializer(approval.approval_settings(agent)).data)

    @extend_schema(request=None, responses=ApprovalSettingsSerializer, summary="Enable automatic approval")
    @action(detail=True, methods=["post"], url_path="auto-approve/enable")
    def auto_approve_enable(self, request, pk=None):
        """After each iteration, apply the best candidate that passes every threshold (never for a
        live trading agent: its candidates are judged and left for a person)."""
        agent = approval.auto_approve_enable(self.get_object(), actor=request.user)
        return self._approval_response(agent)

    @extend_schema(request=None, responses=ApprovalSettingsSerializer, summary="Disable automatic approval")
    @action(detail=True, methods=["post"], url_path="auto-approve/disable")
    def auto_approve_disable(self, request, pk=None):
        """Stop judging and applying candidates automatically; they wait for a person."""
        agent = approval.auto_approve_disable(self.get_object(), actor=request.user)
        return self._approval_response(agent)

    @extend_schema(methods=["GET"], responses=ApprovalSettingsSerializer,
                   summary="Thresholds in force, the defaults, and whether approval is automatic")
    @extend_schema(methods=["PUT"], request=ApprovalThresholdsSerializer, responses=ApprovalSettingsSerializer,
                   examples=[_EXAMPLE],
                   summary="Replace the thresholds: those not sent go back to their defaults")
    @extend_schema(methods=["PATCH"], request=ApprovalThresholdsSerializer(partial=True),
                   responses=ApprovalSettingsSerializer, summary="Change some thresholds, keep the others")
    @action(detail=True, methods=["get", "put", "patch"], url_path="approval-thresholds",
            parser_classes=[LabJSONParser])
    def approval_thresholds(self, request, pk=None):
        """Thresholds judged on each candidate's validation metrics. A JSON body: booleans are not
        numbers, unknown names are refused, and every bad field is named in one 400."""
        agent = self.get_object()
        if request.method != "GET":
            agent = approval.thresholds_set(
                agent, request.data, actor=request.user, partial=request.method == "PATCH"
            )
        return self._approval_response(agent)


__all__ = ["ApprovalActionsMixin", "ApprovalSettingsSerializer", "ApprovalThresholdsSerializer"]
