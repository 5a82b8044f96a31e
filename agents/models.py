"""Agents, their immutable strategy versions, learning iterations and decisions."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from agents.agent_settings import Objective, RefinerChoice, setting
from agents.market.models import BarFeedConfig, BarImport, BarInterval, Instrument, PriceBar

__all__ = [
    "ActivityLog",
    "AgentStatus",
    "BarFeedConfig",
    "BarImport",
    "BarInterval",
    "ExamReading",
    "Instrument",
    "LearningIteration",
    "Objective",
    "PriceBar",
    "Refinement",
    "RefinerChoice",
    "StrategyVersion",
    "Trade",
    "TradingAgent",
]


class AgentStatus(models.TextChoices):
    LEARNING = "learning", "Learning"
    PAPER_TRADING = "paper_trading", "Paper trading"
    LIVE_TRADING = "live_trading", "Live trading"


class ContinuousState(models.TextChoices):
    STOPPED = "stopped", "Stopped"
    RUNNING = "running", "Running"
    COOLING_DOWN = "cooling_down", "Cooling down"
    CAPPED = "capped", "Capped for today"
    CONVERGED = "converged", "Converged"


class TradingAgent(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agents")
    # The owner's settings: default, help, bounds and choices declared in agents.agent_settings.
    name = models.CharField(**setting("name").column())
    description = models.TextField(blank=True, **setting("description").column())
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="agents")
    strategy_template = models.CharField(max_length=64)
    status = models.CharField(max_length=20, choices=AgentStatus.choices, default=AgentStatus.LEARNING)
    current_version = models.ForeignKey(
        "StrategyVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    refiner = models.CharField(max_length=10, **setting("refiner").column())
    objective = models.CharField(max_length=20, **setting("objective").column())
    fee_bps = models.FloatField(**setting("fee_bps").column())
    slippage_bps = models.FloatField(**setting("slippage_bps").column())
    test_fraction = models.FloatField(**setting("test_fraction").column())
    n_folds = models.PositiveSmallIntegerField(**setting("n_folds").column())
    candidates_per_iteration = models.PositiveSmallIntegerField(**setting("candidates_per_iteration").column())
    initial_capital = models.FloatField(**setting("initial_capital").column())
    random_seed = models.IntegerField(**setting("random_seed").column())
    share_peer_trials = models.BooleanField(**setting("share_peer_trials").column())
    # Instruments whose peers' trials this agent may warm-start from, besides its own
    # (agents.evaluation.peer_trials); chosen by the owner, by symbol in the API.
    related_instruments = models.ManyToManyField(
        Instrument, blank=True, related_name="+",
        help_text="Peers on these instruments count as peers when sharing is on (besides the agent's own).",
    )

    # Autonomy: scheduled, automatically approved and continuous learning.
    auto_learn_enabled = models.BooleanField(default=False)
    learning_schedule = models.CharField(max_length=120, blank=True, help_text="Five-field cron.")
    schedule_timezone = models.CharField(max_length=64, default="UTC")
    next_scheduled_iteration = models.DateTimeField(null=True, blank=True)
    auto_approve_enabled = models.BooleanField(default=False)
    approval_thresholds = models.JSONField(default=dict, blank=True)
    continuous_learning_enabled = models.BooleanField(default=False)
    continuous_state = models.CharField(
        max_length=20, choices=ContinuousState.choices, default=ContinuousState.STOPPED
    )
    continuous_stop_reason = models.CharField(max_length=300, blank=True)
    max_iterations_per_day = models.PositiveIntegerField(**setting("max_iterations_per_day").column())
    min_iteration_gap_minutes = models.PositiveIntegerField(**setting("min_iteration_gap_minutes").column())
    convergence_threshold = models.FloatField(**setting("convergence_threshold").column())

    # Graduation (the graduation app owns the behaviour; the columns live on the agent).
    auto_graduate = models.BooleanField(
        default=False, help_text="Move to paper trading by itself once eligible (never to live)."
    )
    graduation_criteria = models.JSONField(default=dict, blank=True, help_text="Overrides of the lab defaults.")
    auto_apply_in_paper = models.BooleanField(
        default=False, help_text="Let auto-approval re-pin the traded version while paper trading."
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="unique_agent_name_per_owner"),
        ]
        indexes = [
            models.Index(fields=["status"], name="agent_status_idx"),
            models.Index(fields=["continuous_learning_enabled", "continuous_state"], name="agent_continuous_idx"),
        ]

    def __str__(self):
        return self.name


class VersionOrigin(models.TextChoices):
    INITIAL = "initial", "Initial"
    REFINEMENT = "refinement", "Refinement"
    MANUAL = "manual", "Manual"
    ROLLBACK = "rollback", "Rollback"


class StrategyVersion(models.Model):
    """Immutable: a version is never edited, only added."""

    agent = models.ForeignKey(TradingAgent, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    params = models.JSONField()
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    origin = models.CharField(max_length=12, choices=VersionOrigin.choices)
    metrics = models.JSONField(default=dict, blank=True, help_text="Train and validation metrics when made.")
    note = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["agent_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["agent", "number"], name="unique_version_number_per_agent"),
        ]

    def __str__(self):
        return f"v{self.number}"


class IterationTrigger(models.TextChoices):
    MANUAL = "manual", "Manual"
    SCHEDULE = "schedule", "Schedule"
    CONTINUOUS = "continuous", "Continuous"
    API = "api", "API"


class IterationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class LearningIteration(models.Model):
    agent = models.ForeignKey(TradingAgent, on_delete=models.CASCADE, related_name="iterations")
    number = models.PositiveIntegerField()
    trigger = models.CharField(max_length=12, choices=IterationTrigger.choices, default=IterationTrigger.MANUAL)
    status = models.CharField(max_length=10, choices=IterationStatus.choices, default=IterationStatus.QUEUED)
    # Deduplicates triggers: one iteration per agent and key (e.g. a schedule slot).
    idempotency_key = models.CharField(max_length=120, null=True, blank=True)
    version = models.ForeignKey(
        StrategyVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="iterations"
    )
    windows = models.JSONField(default=dict, blank=True)
    # Since the sealed-window protocol: train_metrics = selection metrics (all folds end to end,
    # in-sample for the search), validation_metrics = the sealed test window's (out of sample).
    train_metrics = models.JSONField(
        default=dict, blank=True, help_text="In-sample: selection metrics (the folds end to end)."
    )
    validation_metrics = models.JSONField(
        default=dict, blank=True, help_text="Out of sample: the sealed test window's metrics."
    )
    score = models.FloatField(
        null=True, blank=True, help_text="Headline: the objective on the sealed test window (out of sample)."
    )
    best_candidate_score = models.FloatField(null=True, blank=True, help_text="Best candidate's selection score.")
    improvement = models.FloatField(null=True, blank=True)
    fold_metrics = models.JSONField(default=list, blank=True, help_text="The evaluated version's metrics per fold.")
    selection_score = models.FloatField(
        null=True, blank=True, help_text="In-sample: the version's selection score across folds."
    )
    selection_sharpe = models.FloatField(null=True, blank=True, help_text="Per-bar Sharpe on the selection data.")
    dsr = models.FloatField(null=True, blank=True, help_text="Deflated Sharpe ratio of the evaluated version.")
    pbo = models.FloatField(null=True, blank=True, help_text="Probability of backtest overfitting of the search.")
    n_trials = models.PositiveIntegerField(null=True, blank=True, help_text="Distinct parameter sets tried.")
    evidence = models.JSONField(default=dict, blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    refiner_used = models.CharField(max_length=10, blank=True)
    fallback_reason = models.TextField(blank=True)
    llm_model = models.CharField(max_length=80, blank=True)
    llm_input_tokens = models.PositiveIntegerField(default=0)
    llm_output_tokens = models.PositiveIntegerField(default=0)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["agent_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["agent", "number"], name="unique_iteration_number_per_agent"),
            models.UniqueConstraint(
                fields=["agent"], condition=Q(status="running"), name="one_running_iteration_per_agent"
            ),
            # A trigger while one is queued or running joins it instead of piling up.
            models.UniqueConstraint(
                fields=["agent"], condition=Q(status__in=["queued", "running"]), name="one_active_iteration_per_agent"
            ),
            models.UniqueConstraint(
                fields=["agent", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="unique_iteration_idempotency_key",
            ),
        ]
        indexes = [
            models.Index(fields=["agent", "-queued_at"], name="iteration_agent_recent_idx"),
            models.Index(fields=["status", "started_at"], name="iteration_status_idx"),
        ]

    def __str__(self):
        return f"{self.agent_id} #{self.number}"


class RefinementStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    APPLIED = "applied", "Applied"
    SUPERSEDED = "superseded", "Superseded"


class Refinement(models.Model):
    iteration = models.ForeignKey(LearningIteration, on_delete=models.CASCADE, related_name="refinements")
    agent = models.ForeignKey(TradingAgent, on_delete=models.CASCADE, related_name="refinements")
    proposed_params = models.JSONField()
    rationale = models.TextField(blank=True)
    source = models.CharField(max_length=10)
    # train_metrics = selection metrics; validation_metrics = sealed test metrics once a gate read them.
    train_metrics = models.JSONField(
        default=dict, blank=True, help_text="In-sample: selection metrics (the folds end to end)."
    )
    validation_metrics = models.JSONField(
        default=dict, blank=True, help_text="Out of sample: the sealed test window's metrics, once a gate read them."
    )
    score = models.FloatField(null=True, blank=True, help_text="Selection score (in-sample, across folds).")
    fold_metrics = models.JSONField(default=list, blank=True)
    selection_sharpe = models.FloatField(null=True, blank=True, help_text="Per-bar Sharpe on the selection data.")
    test_score = models.FloatField(
        null=True, blank=True, help_text="Objective on the sealed test window, when a gate read it."
    )
    dsr = models.FloatField(null=True, blank=True, help_text="Deflated Sharpe ratio over the agent's trials.")
    improvement_p = models.FloatField(
        null=True, blank=True, help_text="p-value of the paired test that it beats the current version."
    )
    evidence = models.JSONField(default=dict, blank=True)
    # The peers' trials the refiner was given (agents.evaluation.peer_trials.provenance); {} when
    # the agent does not share.
    provenance = models.JSONField(
        default=dict, blank=True, help_text="Peer trials given to the refiner: agent, params, selection score."
    )
    status = models.CharField(max_length=12, choices=RefinementStatus.choices, default=RefinementStatus.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_automatically = models.BooleanField(default=False)
    decision_reason = models.TextField(blank=True)
    criteria_results = models.JSONField(default=list, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    produced_version = models.ForeignKey(
        StrategyVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-score"]
        indexes = [
            models.Index(fields=["agent", "status"], name="refinement_agent_status_idx"),
        ]

    def __str__(self):
        return f"refinement {self.pk} ({self.status})"


class ExamPurpose(models.TextChoices):
    REPORT = "report", "Headline score of the evaluated version"
    APPROVAL = "approval", "Auto-approval"
    MANUAL_APPROVAL = "manual_approval", "Approval by a person"
    GRADUATION = "graduation", "Graduation check"
    TOURNAMENT = "tournament", "Tournament standings (a part of the sealed window)"


class ExamReading(models.Model):
    """One reading of the sealed test window: who read it, for which parameter set, on which bars.

    The gates count these (how often the exam has been used, and on how many distinct parameter
    sets); nothing else reads the sealed window.
    """

    agent = models.ForeignKey(TradingAgent, on_delete=models.CASCADE, related_name="exam_readings")
    purpose = models.CharField(max_length=20, choices=ExamPurpose.choices)
    version = models.ForeignKey(StrategyVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    refinement = models.ForeignKey("Refinement", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    iteration = models.ForeignKey(
        "LearningIteration", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    params_key = models.CharField(max_length=64, help_text="Hash of the parameter set examined.")
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    bars = models.PositiveIntegerField()
    score = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["agent", "window_start"], name="exam_agent_window_idx")]

    def __str__(self):
        return f"{self.purpose} reading of {self.params_key[:8]} on {self.window_start:%Y-%m-%d}.."


class Trade(models.Model):
    """A closed trade of the version evaluated by an iteration, on the sealed test window
    (on the old validation window for iterations before the protocol)."""

    iteration = models.ForeignKey(LearningIteration, on_delete=models.CASCADE, related_name="trades")
    version = models.ForeignKey(StrategyVersion, null=True, on_delete=models.SET_NULL, related_name="trades")
    side = models.CharField(max_length=5)
    entry_time = models.DateTimeField()
    exit_time = models.DateTimeField()
    entry_price = models.FloatField()
    exit_price = models.FloatField()
    return_pct = models.FloatField()
    pnl = models.FloatField()
    bars_held = models.PositiveIntegerField()

    class Meta:
        ordering = ["iteration", "entry_time"]

    def __str__(self):
        return f"{self.side} {self.entry_time:%Y-%m-%d} -> {self.exit_time:%Y-%m-%d}"


class ActivityLog(models.Model):
    agent = models.ForeignKey(TradingAgent, on_delete=models.CASCADE, related_name="activity")
    event = models.CharField(max_length=64)
    message = models.TextField()
    details = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150, default="system")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["agent", "-created_at"], name="activity_agent_time_idx")]

    def __str__(self):
        return f"{self.event}: {self.message[:60]}"
