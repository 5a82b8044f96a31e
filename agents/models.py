"""Agents, their immutable strategy versions, learning iterations and decisions."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from agents.market.models import BarInterval, Instrument, PriceBar

__all__ = [
    "ActivityLog",
    "AgentStatus",
    "BarInterval",
    "Instrument",
    "LearningIteration",
    "PriceBar",
    "Refinement",
    "StrategyVersion",
    "Trade",
    "TradingAgent",
]


class AgentStatus(models.TextChoices):
    LEARNING = "learning", "Learning"
    PAPER_TRADING = "paper_trading", "Paper trading"
    LIVE_TRADING = "live_trading", "Live trading"


class RefinerChoice(models.TextChoices):
    AUTO = "auto", "Auto (Claude with a key, else Optuna)"
    OPTUNA = "optuna", "Optuna"
    CLAUDE = "claude", "Claude"


class Objective(models.TextChoices):
    SHARPE = "sharpe", "Sharpe ratio"
    SORTINO = "sortino", "Sortino ratio"
    CALMAR = "calmar", "Calmar ratio"
    TOTAL_RETURN = "total_return", "Total return"
    PSR = "psr", "Probabilistic Sharpe ratio"


class ContinuousState(models.TextChoices):
    STOPPED = "stopped", "Stopped"
    RUNNING = "running", "Running"
    COOLING_DOWN = "cooling_down", "Cooling down"
    CAPPED = "capped", "Capped for today"
    CONVERGED = "converged", "Converged"


class TradingAgent(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agents")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="agents")
    strategy_template = models.CharField(max_length=64)
    status = models.CharField(max_length=20, choices=AgentStatus.choices, default=AgentStatus.LEARNING)
    current_version = models.ForeignKey(
        "StrategyVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    refiner = models.CharField(max_length=10, choices=RefinerChoice.choices, default=RefinerChoice.AUTO)
    objective = models.CharField(max_length=20, choices=Objective.choices, default=Objective.SHARPE)
    fee_bps = models.FloatField(default=1.0, help_text="Fee per side in basis points.")
    slippage_bps = models.FloatField(default=1.0, help_text="Slippage per side in basis points.")
    train_fraction = models.FloatField(default=0.7, help_text="Share of bars in the train window (older part).")
    candidates_per_iteration = models.PositiveSmallIntegerField(default=8)
    initial_capital = models.FloatField(default=100_000.0)
    random_seed = models.IntegerField(default=42, help_text="Seeds the optimiser so runs are reproducible.")

    # Phase 2 (autonomy) columns, named as in the seed.
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
    max_iterations_per_day = models.PositiveIntegerField(default=10)
    min_iteration_gap_minutes = models.PositiveIntegerField(default=60)
    convergence_threshold = models.FloatField(default=0.01)

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
    train_metrics = models.JSONField(default=dict, blank=True)
    validation_metrics = models.JSONField(default=dict, blank=True)
    score = models.FloatField(null=True, blank=True)
    best_candidate_score = models.FloatField(null=True, blank=True)
    improvement = models.FloatField(null=True, blank=True)
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
    train_metrics = models.JSONField(default=dict, blank=True)
    validation_metrics = models.JSONField(default=dict, blank=True)
    score = models.FloatField(null=True, blank=True)
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


class Trade(models.Model):
    """A closed trade of the version evaluated by an iteration, on the validation window."""

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
