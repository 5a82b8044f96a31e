"""Shapes of the graduation API (the services return plain dicts and model rows)."""

from rest_framework import serializers

from agents.api.rule_fields import RuleResultSerializer, rules_serializer
from agents.models import AgentStatus
from core.strict import JSONBooleanField, RejectUnknownFieldsMixin
from graduation.criteria import GRADUATION_RULES
from graduation.models import EventKind, GraduationEvent, PaperAccount, PaperEquityPoint, PaperFill, PaperTrade
from graduation.services import MAX_REASON


# Plain strings documenting their values rather than enums: the AgentStatus choice set and the
# property name "kind" are already used by other apps' components, and drf-spectacular warns on
# such collisions unless settings name them (ENUM_NAME_OVERRIDES).
def agent_status_field(**kwargs):
    return serializers.CharField(help_text="One of: " + ", ".join(AgentStatus.values) + ".", **kwargs)


def event_kind_field(**kwargs):
    return serializers.CharField(help_text="One of: " + ", ".join(EventKind.values) + ".", **kwargs)


def window_kind_field(**kwargs):
    return serializers.CharField(help_text="One of: iterations (learning record), paper (paper record), none.",
                                 **kwargs)


CriteriaSerializer = rules_serializer(
    "Criteria", GRADUATION_RULES,
    doc="Graduation criteria (graduation/criteria.py). In a PUT each is optional: the ones given override "
        "the lab defaults, the others follow them; unknown names are refused.",
)


class CriteriaSettingsSerializer(serializers.Serializer):
    criteria = CriteriaSerializer(help_text="In force: the defaults overlaid with the agent's overrides.")
    overrides = serializers.DictField(child=serializers.JSONField(), help_text="The agent's own values only.")
    defaults = CriteriaSerializer(help_text="The lab's defaults (settings).")


class CriterionResultSerializer(RuleResultSerializer):
    min_track_record_bars = serializers.IntegerField(required=False, allow_null=True)
    confidence = serializers.FloatField(required=False)
    trades = serializers.IntegerField(required=False)


class EligibilityWindowSerializer(serializers.Serializer):
    kind = window_kind_field()
    iterations = serializers.ListField(child=serializers.IntegerField(), help_text="Iteration numbers, oldest first.")
    # "from" is a Python keyword: declared through locals() so the JSON key stays "from".
    locals()["from"] = serializers.DateTimeField(allow_null=True)
    to = serializers.DateTimeField(allow_null=True)
    since_demotion = serializers.DateTimeField(allow_null=True, required=False)
    iteration = serializers.IntegerField(required=False, help_text="The iteration whose evidence was judged.")
    n_trials = serializers.IntegerField(required=False, allow_null=True)
    windows = serializers.JSONField(required=False, help_text="Fold and sealed test window spans of that iteration.")
    account = serializers.IntegerField(required=False)
    bars = serializers.IntegerField(required=False)
    metrics = serializers.DictField(child=serializers.FloatField(), required=False, help_text="Paper metrics.")


class EligibilitySerializer(serializers.Serializer):
    agent = serializers.UUIDField()
    status = agent_status_field()
    target_status = agent_status_field(allow_null=True)
    verdict = serializers.ChoiceField(choices=["eligible", "not_eligible", "final"])
    eligible = serializers.BooleanField()
    criteria = CriterionResultSerializer(many=True)
    failed = serializers.ListField(child=serializers.CharField())
    window = EligibilityWindowSerializer()
    criteria_in_force = CriteriaSerializer()
    evaluated_at = serializers.DateTimeField()


class GraduateSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=MAX_REASON,
                                   help_text="Required for live trading.")
    confirm = JSONBooleanField(required=False, default=False,
                               help_text="Must be the JSON boolean true to move to live trading.")


class DemoteSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=MAX_REASON, help_text="Required.")


class GraduationEventSerializer(serializers.ModelSerializer):
    kind = event_kind_field()
    from_status = agent_status_field()
    to_status = agent_status_field()
    actor = serializers.SerializerMethodField()
    version = serializers.SerializerMethodField()
    previous_version = serializers.SerializerMethodField()

    class Meta:
        model = GraduationEvent
        fields = ["id", "kind", "from_status", "to_status", "automatic", "actor", "actor_label", "reason",
                  "version", "previous_version", "metrics_snapshot", "created_at"]
        read_only_fields = fields

    def get_actor(self, obj) -> str | None:
        return obj.actor.get_username() if obj.actor_id else None

    def get_version(self, obj) -> int | None:
        return obj.version.number if obj.version_id else None

    def get_previous_version(self, obj) -> int | None:
        return obj.previous_version.number if obj.previous_version_id else None


class VersionAtSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    status = agent_status_field()
    trading = serializers.BooleanField()
    version = serializers.IntegerField(allow_null=True, help_text="Version number.")
    event = GraduationEventSerializer(allow_null=True, help_text="The last event at or before `at`.")


class GraduationSwitchesSerializer(serializers.Serializer):
    auto_graduate = serializers.BooleanField(required=False, help_text="Move to paper trading once eligible.")
    auto_apply_in_paper = serializers.BooleanField(
        required=False, help_text="Let auto-approval make a new challenger while paper trading (never live); it "
                                  "replaces the traded version only by winning the paired test."
    )


class PaperAccountSerializer(serializers.ModelSerializer):
    version = serializers.SerializerMethodField()

    class Meta:
        model = PaperAccount
        fields = ["id", "live", "role", "version", "opened_at", "closed_at", "close_reason", "initial_capital",
                  "fee_bps", "slippage_bps", "cash", "units", "position", "equity", "peak_equity", "max_drawdown",
                  "opened_bar_timestamp", "last_bar_timestamp", "pending_target", "stopped", "bars_processed",
                  "closed_trades", "winning_trades", "realised_pnl", "fees_paid", "ruined"]
        read_only_fields = fields

    def get_version(self, obj) -> int | None:
        return obj.version.number if obj.version_id else None


class PaperFillSerializer(serializers.ModelSerializer):
    class Meta:
        model = PaperFill
        fields = ["timestamp", "side", "quantity", "price", "reference_price", "fee", "reason", "weight_after"]
        read_only_fields = fields


class PaperTradeSerializer(serializers.ModelSerializer):
    class Meta:
        model = PaperTrade
        fields = ["side", "entry_time", "exit_time", "entry_price", "exit_price", "quantity", "pnl", "return_pct",
                  "bars_held", "exit_reason"]
        read_only_fields = fields


class PaperPointSerializer(serializers.ModelSerializer):
    class Meta:
        model = PaperEquityPoint
        fields = ["timestamp", "equity", "position", "target"]
        read_only_fields = fields


class PaperSummarySerializer(serializers.Serializer):
    account = PaperAccountSerializer(allow_null=True, help_text="The open account, else the latest closed one.")
    metrics = serializers.DictField(child=serializers.FloatField(), help_text="Backtest metric functions on paper.")
    open_trade = serializers.DictField(allow_null=True, help_text="The trade still open, if any.")
    fills = PaperFillSerializer(many=True, help_text="Most recent first.")
    trades = PaperTradeSerializer(many=True, help_text="Most recent first.")
    equity = PaperPointSerializer(many=True, help_text="Oldest first (the most recent `points`).")


class PaperAccountsSerializer(serializers.Serializer):
    champion = PaperSummarySerializer(help_text="The traded account (paper or live).")
    challenger = PaperSummarySerializer(help_text="The shadow paper account of the challenger version "
                                                  "(account null when there never was one).")


class AccountRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.IntegerField(allow_null=True)
    live = serializers.BooleanField()
    equity = serializers.FloatField()
    initial_capital = serializers.FloatField()


class ChallengerStateSerializer(serializers.Serializer):
    state = serializers.CharField(help_text="none (no challenger), collecting, or ready.")
    verdict = serializers.CharField(help_text="What is missing, or ready (and whether a person must act).")
    live = serializers.BooleanField(help_text="The champion trades live: promotion needs a person.")
    needs_person = serializers.BooleanField()
    champion = AccountRefSerializer(allow_null=True)
    challenger = AccountRefSerializer(allow_null=True)
    bars = serializers.IntegerField(help_text="T: common per-bar returns since the shadow opened.")
    min_bars = serializers.IntegerField(help_text="LAB_PAPER_MIN_BARS.")
    min_trl = serializers.FloatField(allow_null=True, help_text="Minimum track record length (null: infinite).")
    z = serializers.FloatField()
    p_value = serializers.FloatField(help_text="One-sided, H1: the challenger's Sharpe exceeds the champion's.")
    rho = serializers.FloatField()
    level = serializers.FloatField(help_text="LAB_CHALLENGER_SIGNIFICANCE.")
    sr_challenger = serializers.FloatField(help_text="Per-bar Sharpe ratio.")
    sr_champion = serializers.FloatField(help_text="Per-bar Sharpe ratio.")
    significant = serializers.BooleanField()
    long_enough = serializers.BooleanField()
    start = serializers.CharField(allow_null=True, source="from", help_text="First common bar.")
    end = serializers.CharField(allow_null=True, source="to", help_text="Last common bar.")


class DismissSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=MAX_REASON, help_text="Required.")


class PromoteSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    pass
