"""The graduation API's query parameters, typed and bounded by django-filter (core.filters): a
bad value is a 400 naming the parameter and the rule."""

from core.filters import IntegerFilter, LabFilterSet, UTCIsoDateTimeFilter
from graduation.models import GraduationEvent, PaperAccount
from graduation.trading.summary import DEFAULT_FILLS, DEFAULT_POINTS, MAX_FILLS, MAX_POINTS


class VersionAtParams(LabFilterSet):
    at = UTCIsoDateTimeFilter(help_text="ISO 8601, any offset (none: the lab's time zone, LAB_TIME_ZONE); "
                                        "default now.")

    class Meta:
        model = GraduationEvent
        fields = ["at"]


class PaperParams(LabFilterSet):
    points = IntegerFilter(min_value=1, max_value=MAX_POINTS,
                           help_text=f"Equity points (most recent), 1..{MAX_POINTS}; default {DEFAULT_POINTS}.")
    fills = IntegerFilter(min_value=1, max_value=MAX_FILLS,
                          help_text=f"Recent fills and trades, 1..{MAX_FILLS}; default {DEFAULT_FILLS}.")

    class Meta:
        model = PaperAccount
        fields = ["points", "fills"]
