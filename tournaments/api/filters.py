"""The tournaments list's filters (core.filters: strict values, 400 naming the parameter)."""

import django_filters

from core.filters import LabFilterSet
from tournaments.models import Tournament


class TournamentFilter(LabFilterSet):
    search = django_filters.CharFilter(field_name="name", lookup_expr="icontains",
                                       help_text="Part of the tournament's name (case-insensitive).")

    class Meta:
        model = Tournament
        fields = ["status", "search"]
