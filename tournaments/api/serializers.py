"""Tournament API serializers: the input is typed strictly (unknown names refused by name)."""

from rest_framework import serializers

from core.strict import RejectUnknownFieldsMixin
from tournaments.models import Tournament, TournamentRound, TournamentStanding, TournamentStatus


class TournamentCreateSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    name = serializers.CharField(max_length=120)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    agents = serializers.ListField(child=serializers.UUIDField(), min_length=2, max_length=50,
                                   help_text="The entrants: ids of agents you may see (2 to 50).")
    window_start = serializers.DateTimeField(required=False, allow_null=True, default=None,
                                             help_text="Default: the latest start of the entrants' sealed windows.")
    window_end = serializers.DateTimeField(required=False, allow_null=True, default=None,
                                           help_text="Default: the earliest end of the entrants' sealed windows.")
    round_schedule = serializers.CharField(required=False, allow_blank=True, default="",
                                           help_text="Five-field cron of the rounds; empty: on demand only.")
    schedule_timezone = serializers.CharField(required=False, default="UTC")


class TournamentUpdateSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """PATCH: any of these; the entrants have their own endpoints and the common window is fixed."""

    read_only_names = ("entrants", "agents")  # POST/DELETE .../entrants
    name = serializers.CharField(max_length=120, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    round_schedule = serializers.CharField(required=False, allow_blank=True,
                                           help_text="Five-field cron of the rounds; empty: on demand only. "
                                                     "The beat row follows.")
    schedule_timezone = serializers.CharField(required=False)
    status = serializers.ChoiceField(choices=TournamentStatus.choices, required=False,
                                     help_text="Only 'finished' may be set (no more rounds; not reopened).")


class EntrantsAddSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    agent_ids = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=50,
                                      help_text="Agents you may see whose sealed test window holds the "
                                                "tournament's fixed common window.")


class EntrantSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="agent.id")
    name = serializers.CharField(source="agent.name")
    instrument = serializers.CharField(source="agent.instrument.symbol")
    strategy_template = serializers.CharField(source="agent.strategy_template")
    status = serializers.CharField(source="agent.status")
    joined_at = serializers.DateTimeField()
    forward_from = serializers.DateTimeField(allow_null=True)


class TournamentSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    entrants = EntrantSerializer(source="entries", many=True, read_only=True)
    leader = serializers.UUIDField(source="leader_id", allow_null=True, read_only=True)

    class Meta:
        model = Tournament
        fields = ["id", "name", "owner", "description", "status", "created_at", "window_start", "window_end",
                  "round_schedule", "schedule_timezone", "rounds_run", "leader", "standings_at", "summary",
                  "entrants"]


class StandingSerializer(serializers.ModelSerializer):
    agent = serializers.UUIDField(source="agent_id")
    agent_name = serializers.CharField(source="agent.name")
    instrument = serializers.CharField(source="agent.instrument.symbol")

    class Meta:
        model = TournamentStanding
        fields = ["rank", "agent", "agent_name", "instrument", "version_number", "score", "window", "forward",
                  "equity", "computed_at"]


class RoundSerializer(serializers.ModelSerializer):
    class Meta:
        model = TournamentRound
        fields = ["number", "key", "trigger", "started_at", "finished_at", "iteration_ids"]
