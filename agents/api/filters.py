"""The agents API's list filters, built on core.filters (strict values, 400 naming the parameter)."""

import django_filters

from agents.models import ActivityLog, LearningIteration, Refinement, TradingAgent
from core.filters import LabFilterSet, StrictBooleanFilter, UTCIsoDateTimeFilter


class AgentFilter(LabFilterSet):
    instrument = django_filters.CharFilter(field_name="instrument__symbol", lookup_expr="iexact")
    template = django_filters.CharFilter(field_name="strategy_template")

    class Meta:
        model = TradingAgent
        fields = ["status", "instrument", "template", "refiner", "continuous_state", "auto_learn_enabled"]


class IterationFilter(LabFilterSet):
    since = UTCIsoDateTimeFilter(field_name="queued_at", lookup_expr="gte")
    until = UTCIsoDateTimeFilter(field_name="queued_at", lookup_expr="lt")

    class Meta:
        model = LearningIteration
        fields = ["status", "trigger", "since", "until"]


class RefinementFilter(LabFilterSet):
    class Meta:
        model = Refinement
        fields = ["status", "source"]


class ActivityFilter(LabFilterSet):
    since = UTCIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = ActivityLog
        fields = ["event", "since"]


class IterationStartParams(LabFilterSet):
    """The query parameters of POST .../iterations (read by the view, not a filter)."""

    wait = StrictBooleanFilter(help_text="true: run the iteration inline and return it finished.")

    class Meta:
        model = LearningIteration
        fields = ["wait"]
