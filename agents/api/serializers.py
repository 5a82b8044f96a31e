from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents import agent_settings
from agents.api.rule_fields import RuleResultSerializer
from agents.api.setting_fields import DeclaredSettingsMixin
from agents.evaluation.headline import headline_of
from agents.evaluation.rules import describe
from agents.models import (
    ActivityLog,
    Instrument,
    LearningIteration,
    Refinement,
    StrategyVersion,
    TradingAgent,
)
from core.strict import RejectUnknownFieldsMixin, without_form_controls


class InstrumentSerializer(serializers.ModelSerializer):
    bar_count = serializers.IntegerField(read_only=True)
    first_bar = serializers.DateTimeField(read_only=True)
    last_bar = serializers.DateTimeField(read_only=True)

    class Meta:
        model = Instrument
        fields = ["id", "symbol", "name", "bar_interval", "bars_per_year", "has_intrabar_range", "bar_count",
                  "first_bar", "last_bar"]


class HeadlineSerializer(serializers.Serializer):
    score = serializers.FloatField(
        allow_null=True, help_text="The objective on the sealed test window (out of sample); null: never examined."
    )
    source = serializers.CharField(allow_null=True, help_text="Which reading of the sealed window it comes from.")
    iteration = serializers.IntegerField(allow_null=True, help_text="The iteration that measured it, if any.")


class VersionSerializer(serializers.ModelSerializer):
    parent_number = serializers.IntegerField(source="parent.number", read_only=True, default=None, allow_null=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None, allow_null=True)
    headline = serializers.SerializerMethodField(help_text="The version's out-of-sample score.")

    class Meta:
        model = StrategyVersion
        fields = ["id", "number", "params", "origin", "parent_number", "headline", "metrics", "note", "created_by",
                  "created_at"]
        read_only_fields = fields

    @extend_schema_field(HeadlineSerializer)
    def get_headline(self, version):
        return headline_of(version, version)


class CurrentVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = StrategyVersion
        fields = ["id", "number", "params", "origin", "created_at"]
        read_only_fields = fields


class AgentSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    instrument = serializers.CharField(source="instrument.symbol", read_only=True)
    current_version = CurrentVersionSerializer(read_only=True)
    related_instruments = serializers.SlugRelatedField(
        slug_field="symbol", many=True, read_only=True,
        help_text="Symbols whose peers' trials a warm start may use, besides the agent's own instrument.",
    )
    headline = serializers.SerializerMethodField(
        help_text="The current version's out-of-sample score (sealed test window); DSR and PBO on its iterations."
    )

    @extend_schema_field(HeadlineSerializer)
    def get_headline(self, agent):
        return headline_of(agent, agent.current_version)

    class Meta:
        model = TradingAgent
        fields = [
            "id", "owner", "instrument", "strategy_template", "status", "current_version", "headline",
            *agent_settings.names(), "related_instruments",
            "auto_learn_enabled", "learning_schedule", "schedule_timezone", "next_scheduled_iteration",
            "auto_approve_enabled", "approval_thresholds", "continuous_learning_enabled", "continuous_state",
            "continuous_stop_reason", "created_at", "updated_at",
        ]
        read_only_fields = [
            "id", "owner", "instrument", "strategy_template", "status", "current_version", "headline",
            "auto_learn_enabled", "learning_schedule", "schedule_timezone", "next_scheduled_iteration",
            "auto_approve_enabled", "approval_thresholds", "continuous_learning_enabled", "continuous_state",
            "continuous_stop_reason", "created_at", "updated_at",
        ]


def related_instruments_field():
    # Symbols as given: the service says which are unknown (agents.services.agents).
    return serializers.ListField(
        child=serializers.CharField(error_messages={"invalid": "must be a list of instrument symbols"}),
        required=False, error_messages={"not_a_list": "must be a list of instrument symbols"},
        help_text="Instrument symbols whose peers' trials a warm start may use (share_peer_trials).",
    )


class AgentCreateSerializer(DeclaredSettingsMixin, RejectUnknownFieldsMixin, serializers.Serializer):
    """The settings' fields come from agents.agent_settings; the rules beyond their type and bounds
    (params schema, unique name) are the service's."""

    # Refused by name: an agent is never created in another status or with another's version.
    read_only_names = ("status", "current_version", "owner", "id")
    required_settings = ("name",)

    instrument = serializers.CharField(help_text="Instrument symbol, e.g. SPX.")
    strategy_template = serializers.CharField(help_text="Template key, see /api/strategies.")
    params = serializers.DictField(required=False, default=dict, help_text="Overrides of the template defaults.")
    related_instruments = related_instruments_field()
    # Ids as given: the service says which rule an id breaks (agents.services.ensembles).
    members = serializers.ListField(
        child=serializers.CharField(error_messages={"invalid": "must be a list of agent ids"}),
        required=False, error_messages={"not_a_list": "must be a list of agent ids"},
        help_text="Only for strategy_template 'ensemble': the member agents' ids (2 to 10, on the same "
                  "instrument, yours, no ensembles); their current versions are frozen into version 1.",
    )


class AgentUpdateSerializer(DeclaredSettingsMixin, serializers.Serializer):
    related_instruments = related_instruments_field()

    def validate(self, attrs):
        read_only = {"status", "current_version", "owner", "instrument", "strategy_template", "id"}
        sent = set(without_form_controls(self.initial_data)) if hasattr(self.initial_data, "keys") else set()
        errors = {k: "is read-only: use the dedicated endpoint" for k in sent & read_only}
        unknown = sent - set(self.fields) - read_only
        errors.update({k: "unknown field" for k in unknown})
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class IterationSerializer(serializers.ModelSerializer):
    version_number = serializers.IntegerField(source="version.number", read_only=True, default=None, allow_null=True)
    requested_by = serializers.CharField(source="requested_by.username", read_only=True, default=None,
                                         allow_null=True)

    class Meta:
        model = LearningIteration
        fields = [
            "id", "number", "trigger", "status", "version_number", "windows", "score", "dsr", "pbo", "n_trials",
            "validation_metrics", "selection_score", "selection_sharpe", "fold_metrics", "train_metrics", "evidence",
            "best_candidate_score", "improvement", "queued_at", "started_at",
            "finished_at", "duration_ms", "error", "refiner_used", "fallback_reason", "llm_model",
            "llm_input_tokens", "llm_output_tokens", "requested_by",
        ]
        read_only_fields = fields


class RefinementSerializer(serializers.ModelSerializer):
    iteration_number = serializers.IntegerField(source="iteration.number", read_only=True)
    decided_by = serializers.CharField(source="decided_by.username", read_only=True, default=None, allow_null=True)
    produced_version_number = serializers.IntegerField(source="produced_version.number", read_only=True, default=None,
                                                       allow_null=True)

    class Meta:
        model = Refinement
        fields = [
            "id", "iteration_number", "proposed_params", "rationale", "source", "test_score", "dsr",
            "improvement_p", "validation_metrics", "score", "fold_metrics", "selection_sharpe", "train_metrics",
            "evidence", "provenance", "status", "decided_by", "decided_automatically", "decision_reason",
            "criteria_results",
            "failed_rules", "decided_at", "produced_version_number", "created_at",
        ]
        read_only_fields = fields

    criteria_results = RuleResultSerializer(many=True, read_only=True, help_text="The approval gate's rows.")
    failed_rules = serializers.SerializerMethodField(help_text="The approval rules this candidate fails, plainly.")

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_failed_rules(self, refinement):
        return [describe(row) for row in refinement.criteria_results or [] if not row.get("passed")]


class DecisionSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=1000, default="")


class ActivitySerializer(serializers.ModelSerializer):
    class Meta:
        model = ActivityLog
        fields = ["id", "event", "message", "details", "actor_label", "created_at"]
        read_only_fields = fields


class StrategySerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    params = serializers.DictField(help_text="Parameter name -> {type, default, min, max, description}.")
    needs_intrabar_range = serializers.BooleanField(
        help_text="Reads highs and lows: refused on close-only instruments."
    )
