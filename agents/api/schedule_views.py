"""Scheduled-learning endpoints, mixed into the agents viewset.

`POST .../auto-learn/enable` (optional body: cron, timezone), `POST .../auto-learn/disable`,
`GET|PUT .../schedule` (body: cron, optional timezone, default UTC). The serializers type the
request and the OpenAPI schema; the scheduling service validates the cron and the zone (errors
name the field, e.g. {"cron": ["field 2 (hour) '25' is out of range 0-23"]}) and changes
nothing on bad input.
"""

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from agents.services import scheduling
from core.strict import RejectUnknownFieldsMixin

CRON_HELP = (
    "Five fields: minute hour day_of_month month_of_year day_of_week (0 = Sunday, or sun-sat), "
    "e.g. '0 */6 * * *'; @hourly, @daily, @weekly, @monthly, @yearly accepted."
)
TIMEZONE_HELP = "IANA time zone the cron is read in, e.g. 'Europe/London'. Default UTC."


class ScheduleSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    # Blank is left to the service so the error names the rule, not only "may not be blank".
    cron = serializers.CharField(allow_blank=True, max_length=200, help_text=CRON_HELP)
    timezone = serializers.CharField(allow_blank=True, max_length=100, default="UTC", help_text=TIMEZONE_HELP)


class AutoLearnEnableSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    cron = serializers.CharField(
        required=False, allow_blank=True, max_length=200,
        help_text=f"Optional: set the schedule at the same time. {CRON_HELP}",
    )
    timezone = serializers.CharField(
        required=False, allow_blank=True, max_length=100,
        help_text="Optional; with a cron the default is UTC, without one the agent's zone is kept.",
    )


class ScheduleStateSerializer(serializers.Serializer):
    auto_learn_enabled = serializers.BooleanField()
    learning_schedule = serializers.CharField(help_text="The stored five-field cron ('' when none).")
    schedule_timezone = serializers.CharField()
    description = serializers.CharField(help_text="The cron in words, with its zone.")
    next_scheduled_iteration = serializers.DateTimeField(
        allow_null=True, help_text="Next fire time (UTC) while auto-learn is on; null while it is off."
    )


_EXAMPLE = OpenApiExample(
    "Weekdays at 09:00 London time", value={"cron": "0 9 * * mon-fri", "timezone": "Europe/London"},
    request_only=True,
)


class ScheduleActionsMixin:
    """For LearningAgentViewSet: needs `get_object()` restricted to the user's agents."""

    def _schedule_response(self, agent):
        return Response(ScheduleStateSerializer(scheduling.schedule_state(agent)).data)

    @extend_schema(request=AutoLearnEnableSerializer, responses=ScheduleStateSerializer, examples=[_EXAMPLE],
                   summary="Enable scheduled learning")
    @action(detail=True, methods=["post"], url_path="auto-learn/enable")
    def auto_learn_enable(self, request, pk=None):
        """Run an iteration at each fire time of the agent's cron (set one here or with PUT schedule)."""
        agent = self.get_object()
        payload = AutoLearnEnableSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        agent = scheduling.auto_learn_enable(agent, actor=request.user, **payload.validated_data)
        return self._schedule_response(agent)

    @extend_schema(request=None, responses=ScheduleStateSerializer, summary="Disable scheduled learning")
    @action(detail=True, methods=["post"], url_path="auto-learn/disable")
    def auto_learn_disable(self, request, pk=None):
        """Stop scheduled iterations; the cron is kept for a later enable."""
        agent = scheduling.auto_learn_disable(self.get_object(), actor=request.user)
        return self._schedule_response(agent)

    @extend_schema(methods=["GET"], responses=ScheduleStateSerializer, summary="The learning schedule")
    @extend_schema(methods=["PUT"], request=ScheduleSerializer, responses=ScheduleStateSerializer,
                   examples=[_EXAMPLE], summary="Set the learning schedule")
    @action(detail=True, methods=["get", "put"], url_path="schedule")
    def schedule(self, request, pk=None):
        """The cron and zone of scheduled learning; setting it does not turn auto-learn on or off."""
        agent = self.get_object()
        if request.method == "PUT":
            payload = ScheduleSerializer(data=request.data)
            payload.is_valid(raise_exception=True)
            agent = scheduling.schedule_set(agent, actor=request.user, **payload.validated_data)
        return self._schedule_response(agent)


__all__ = ["ScheduleActionsMixin"]
