import datetime as dt

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

from agents.models import ActivityLog, LearningIteration, Refinement, TradingAgent


def to_utc(value):
    """An aware datetime in UTC. PostgreSQL refuses UTC offsets beyond +-15:59, which ISO 8601 and
    Python allow (e.g. -17:05); converting first sends it a plain UTC time. OverflowError when the
    conversion leaves the datetime range (0001-01-01T00:00+01:00)."""
    return value.astimezone(dt.UTC)


class UTCIsoDateTimeField(IsoDateTimeField):
    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return value
        try:
            return to_utc(value)
        except OverflowError:
            raise forms.ValidationError("datetime out of range", code="invalid")


class UTCIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """ISO 8601 with any offset; compared in UTC."""

    field_class = UTCIsoDateTimeField


class AgentFilter(django_filters.FilterSet):
    instrument = django_filters.CharFilter(field_name="instrument__symbol", lookup_expr="iexact")
    template = django_filters.CharFilter(field_name="strategy_template")

    class Meta:
        model = TradingAgent
        fields = ["status", "instrument", "template", "refiner", "continuous_state", "auto_learn_enabled"]


class IterationFilter(django_filters.FilterSet):
    since = UTCIsoDateTimeFilter(field_name="queued_at", lookup_expr="gte")
    until = UTCIsoDateTimeFilter(field_name="queued_at", lookup_expr="lt")

    class Meta:
        model = LearningIteration
        fields = ["status", "trigger", "since", "until"]


class RefinementFilter(django_filters.FilterSet):
    class Meta:
        model = Refinement
        fields = ["status", "source"]


class ActivityFilter(django_filters.FilterSet):
    since = UTCIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = ActivityLog
        fields = ["event", "since"]
