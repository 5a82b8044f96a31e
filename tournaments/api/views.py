"""Tournaments API: views validate, call one tournaments service, render.

Each user sees the tournaments tournaments.selectors.tournaments_visible_to gives them (another
owner's is a 404); entrants must be agents the requester may see. The writes that change the
entrants answer with the recomputed standings' tournament (the backtests run after the write).
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from agents.models import IterationTrigger
from tournaments.api.filters import TournamentFilter
from tournaments.api.serializers import (
    EntrantsAddSerializer,
    RoundSerializer,
    StandingSerializer,
    TournamentCreateSerializer,
    TournamentSerializer,
    TournamentUpdateSerializer,
)
from tournaments.models import Tournament, TournamentStanding
from tournaments.selectors import tournaments_visible_to
from tournaments.services.entrants import tournament_entrant_remove, tournament_entrants_add
from tournaments.services.rounds import round_start
from tournaments.services.standings import standings_recompute
from tournaments.services.tournaments import tournament_create, tournament_delete, tournament_update

STANDINGS_PAGE = inline_serializer("StandingsPage", fields={
    "count": serializers.IntegerField(), "next": serializers.URLField(allow_null=True),
    "previous": serializers.URLField(allow_null=True), "results": StandingSerializer(many=True),
    "summary": serializers.DictField(help_text="Leader, deflated Sharpe over all entrants' trials, p(edge is noise)."),
    "standings_at": serializers.DateTimeField(allow_null=True),
})


class TournamentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = TournamentSerializer
    filterset_class = TournamentFilter
    ordering_fields = ["name", "created_at"]
    ordering = ["-created_at"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Tournament.objects.none()
        return tournaments_visible_to(self.request.user).select_related("owner").prefetch_related(
            "entries__agent__instrument")

    def get_throttles(self):
        if self.action in ("create", "rounds", "entrants", "entrant_remove") and self.request.method in ("POST",
                                                                                                      "DELETE"):
            self.throttle_scope = "start_work"  # a backtest per entrant, or an iteration each
        return super().get_throttles()

    @extend_schema(request=TournamentCreateSerializer, responses={201: TournamentSerializer})
    def create(self, request):
        payload = TournamentCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        data["agent_ids"] = data.pop("agents")
        tournament = tournament_create(request.user, **data)
        standings_recompute(tournament.pk)
        return self._fresh(tournament, status.HTTP_201_CREATED)

    def _fresh(self, tournament, code=status.HTTP_200_OK):
        return Response(TournamentSerializer(self.get_queryset().get(pk=tournament.pk)).data, status=code)

    @extend_schema(request=TournamentUpdateSerializer, responses={200: TournamentSerializer})
    def partial_update(self, request, pk=None):
        tournament = self.get_object()
        payload = TournamentUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        return self._fresh(tournament_update(tournament, **payload.validated_data))

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        tournament_delete(self.get_object())  # the beat row goes too
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=EntrantsAddSerializer, responses={201: TournamentSerializer})
    @action(detail=True, methods=["post"], url_path="entrants", filter_backends=[])
    def entrants(self, request, pk=None):
        tournament = self.get_object()
        payload = EntrantsAddSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        tournament = tournament_entrants_add(tournament, agent_ids=payload.validated_data["agent_ids"],
                                             user=request.user)
        return self._fresh(tournament, status.HTTP_201_CREATED)

    @extend_schema(parameters=[OpenApiParameter("agent_id", OpenApiTypes.UUID, OpenApiParameter.PATH,
                                                description="The entrant's agent id.")],
                   responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"entrants/(?P<agent_id>[^/.]+)", filter_backends=[])
    def entrant_remove(self, request, pk=None, agent_id=None):
        tournament_entrant_remove(self.get_object(), agent_id=agent_id)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=STANDINGS_PAGE)
    @action(detail=True, methods=["get"], url_path="standings", filter_backends=[])
    def standings(self, request, pk=None):
        tournament = self.get_object()
        rows = TournamentStanding.objects.filter(tournament=tournament).select_related("agent__instrument")
        page = self.paginate_queryset(rows.order_by("rank", "id"))
        response = self.get_paginated_response(StandingSerializer(page, many=True).data)
        response.data["summary"] = tournament.summary
        response.data["standings_at"] = tournament.standings_at
        return response

    @extend_schema(methods=["GET"], responses=RoundSerializer(many=True))
    @extend_schema(methods=["POST"], request=None, responses={202: RoundSerializer, 200: RoundSerializer})
    @action(detail=True, methods=["get", "post"], url_path="rounds", filter_backends=[])
    def rounds(self, request, pk=None):
        tournament = self.get_object()
        if request.method == "GET":
            page = self.paginate_queryset(tournament.rounds.order_by("-number"))
            return self.get_paginated_response(RoundSerializer(page, many=True).data)
        round_, created = round_start(tournament, trigger=IterationTrigger.API, requested_by=request.user)
        code = status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK
        return Response(RoundSerializer(round_).data, status=code)
