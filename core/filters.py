"""The filter plumbing every API list uses: strict fields, the ordering backend, filter_or_400.

A value a list cannot filter or order by is a 400 naming the parameter and the rule, never a
silently unfiltered list. Lists filter through django-filter's backend, which checks the FilterSet
is valid before using its queryset (a FilterSet's `.qs` on its own drops invalid values; code
outside the backends uses filter_or_400), and StrictOrderingFilter refuses unknown `ordering`
fields (DRF's drops them). tests/security/test_list_filters.py tries every list parameter of the
OpenAPI schema.
"""

import datetime as dt

import django_filters
from django import forms
from django.db import models
from django_filters.fields import IsoDateTimeField
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter


class StrictOrderingFilter(OrderingFilter):
    def get_ordering(self, request, queryset, view):
        params = request.query_params.get(self.ordering_param)
        if params:
            allowed = [name for name, _label in self.get_valid_fields(queryset, view, {"request": request})]
            terms = [term.strip() for term in params.split(",")]
            bad = [term for term in terms if not term or term.removeprefix("-") not in allowed]
            if bad:
                raise ValidationError({self.ordering_param: [
                    f"unknown field {', '.join(repr(t) for t in bad)}; allowed: {', '.join(allowed) or 'none'} "
                    "(prefix - for descending)"
                ]})
        return super().get_ordering(request, queryset, view)


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


class StrictBooleanField(forms.Field):
    """true/false (or 1/0), nothing else: django-filter's own boolean field reads any other value
    as "no filter"."""

    def to_python(self, value):
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise forms.ValidationError("must be true or false", code="invalid")


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class IntegerFilter(django_filters.NumberFilter):
    """A whole number (django-filter's NumberFilter takes decimals); `min_value` / `max_value` are
    the bounds a 400 names."""

    field_class = forms.IntegerField


class LabFilterSet(django_filters.FilterSet):
    """The lab's FilterSet: boolean model fields filter strictly."""

    FILTER_DEFAULTS = {**django_filters.FilterSet.FILTER_DEFAULTS,
                       models.BooleanField: {"filter_class": StrictBooleanFilter}}


def _valid_or_400(filterset):
    if not filterset.is_valid():
        raise ValidationError({name: list(errors) for name, errors in filterset.errors.items()})
    return filterset


def filter_or_400(filterset_class, request, queryset):
    """The queryset filtered by the request's query parameters; ValidationError (400) naming each
    invalid one. For code outside a view's filter backends."""
    return _valid_or_400(filterset_class(request.query_params, queryset=queryset, request=request)).qs


def params_or_400(filterset_class, request):
    """The request's query parameters as the FilterSet types them ({name: value}, absent ones
    left out), for a view that reads a parameter rather than filtering by it (a time, a limit):
    one declaration types, bounds and documents it (schema_parameters) as for a list filter.
    ValidationError (400) naming each invalid one."""
    none = filterset_class._meta.model._default_manager.none()
    filterset = _valid_or_400(filterset_class(request.query_params, queryset=none, request=request))
    return {name: value for name, value in filterset.form.cleaned_data.items()
            if name in request.query_params and value is not None}


def schema_parameters(filterset_class):
    """OpenAPI query parameters of a FilterSet used through filter_or_400 (the schema generator only
    reads a view's own filter backends): choices as enums, date-times, booleans, UUIDs, integers; a
    filter's help_text is the parameter's description."""
    types = ((django_filters.IsoDateTimeFilter, OpenApiTypes.DATETIME),
             (django_filters.BooleanFilter, OpenApiTypes.BOOL), (django_filters.UUIDFilter, OpenApiTypes.UUID),
             (IntegerFilter, OpenApiTypes.INT))
    parameters = []
    for name, item in filterset_class.base_filters.items():
        kind = next((kind for cls, kind in types if isinstance(item, cls)), OpenApiTypes.STR)
        choices = getattr(item.field, "choices", None)
        enum = [value for value, _label in choices if value != ""] if choices else None
        many = isinstance(item, django_filters.MultipleChoiceFilter)
        parameters.append(OpenApiParameter(name, kind, enum=enum, many=many,
                                           description=item.extra.get("help_text", "")))
    return parameters
