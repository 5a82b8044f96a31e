"""Continuous-learning endpoints, mixed into LearningAgentViewSet.

POST .../continuous-learning/start, POST .../continuous-learning/stop (optional "reason"),
GET .../continuous-learning/status. Each answers with the status (agents.services.continuous).
"""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from agents.models import ContinuousState
from agents.services import continuous
from core.strict import RejectUnknownFieldsMixin


class ContinuousStopSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    reason = serializers.CharField(
        required=False, allow_blank=True, max_length=300,
        help_text='Why it is stopped; defaults to "stopped by <user>".',
    )


class ContinuousActiveIterationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.IntegerField()
    status = serializers.CharField()
    trigger = serializers.CharField()
    queued_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)


class ContinuousConvergenceSerializer(serializers.Serializer):
    threshold = serializers.FloatField()
    window = serializers.IntegerField(help_text="How many succeeded iterations are averaged.")
    counted_since = serializers.DateTimeField(allow_null=True, help_text="When the loop was last started.")
    improvements = serializers.ListField(child=serializers.FloatField(allow_null=True))
    mean_abs_improvement = serializers.FloatField(allow_null=True)


class ContinuousStatusSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=ContinuousState.choices)
    enabled = serializers.BooleanField()
    iterations_today = serializers.IntegerField(help_text="Iterations queued today, any trigger and outcome.")
    max_iterations_per_day = serializers.IntegerField()
    min_iteration_gap_minutes = serializers.IntegerField()
    day_ends_at = serializers.DateTimeField(help_text="Next midnight in the lab's TIME_ZONE: the cap resets.")
    last_finished_at = serializers.DateTimeField(allow_null=True)
    next_eligible_at = serializers.DateTimeField(
        allow_null=True, help_text="Earliest next iteration; null when the loop is off or one is active."
    )
    last_improvements = serializers.ListField(
        child=serializers.FloatField(allow_null=True), help_text="Last 3 succeeded iterations, newest first."
    )
    convergence = ContinuousConvergenceSerializer()
    stop_reason = serializers.CharField(allow_blank=True)
    active_iteration = ContinuousActiveIterationSerializer(allow_null=True)


class ContinuousActionsMixin:
    """Needs a viewset whose get_object() returns a TradingAgent the user may see."""

    @extend_schema(request=None, responses=ContinuousStatusSerializer, summary="Start continuous learning")
    @action(detail=True, methods=["post"], url_path="continuous-learning/start")
    def continuous_start(self, request, pk=None):
        agent = continuous.continuous_start(self.get_object(), actor=request.user)
        return self._continuous_status_response(agent)

    @extend_schema(
        request=ContinuousStopSerializer, responses=ContinuousStatusSerializer, summary="Stop continuous learning"
    )
    @action(detail=True, methods=["post"], url_path="continuous-learning/stop")
    def continuous_stop(self, request, pk=None):
        agent = self.get_object()
        payload = ContinuousStopSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        agent = continuous.continuous_stop(agent, actor=request.user, reason=payload.validated_data.get("reason"))
        return self._continuous_status_response(agent)

    @extend_schema(responses=ContinuousStatusSerializer, summary="Continuous-learning status")
    @action(detail=True, methods=["get"], url_path="continuous-learning/status")
    def continuous_status(self, request, pk=None):
        return self._continuous_status_response(self.get_object())

    def _continuous_status_response(self, agent):
        return Response(ContinuousStatusSerializer(continuous.continuous_status(agent)).data)
