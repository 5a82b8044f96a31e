import django_filters

from agents.models import ActivityLog, LearningIteration, Refinement, TradingAgent


class AgentFilter(django_filters.FilterSet):
    instrument = django_filters.CharFilter(field_name="instrument__symbol", lookup_expr="iexact")
    template = django_filters.CharFilter(field_name="strategy_template")

    class Meta:
        model = TradingAgent
        fields = ["status", "instrument", "template", "refiner", "continuous_state", "auto_learn_enabled"]


class IterationFilter(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(field_name="queued_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="queued_at", lookup_expr="lt")

    class Meta:
        model = LearningIteration
        fields = ["status", "trigger", "since", "until"]


class RefinementFilter(django_filters.FilterSet):
    class Meta:
        model = Refinement
        fields = ["status", "source"]


class ActivityFilter(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = ActivityLog
        fields = ["event", "since"]
