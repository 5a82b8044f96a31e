"""Graduation records and the paper-trading ledger.

- ``GraduationEvent``: every status change (graduate, demote) and every re-pin of the traded
  version while trading; together they answer "which version was the agent trading, and in
  which status, at time T" (:func:`graduation.services.version_at`).
- ``EligibilityEpisode``: a run of consecutive checks in which the agent met its criteria for
  the next step; GRADUATION_READY is raised once per episode.
- ``PaperAccount`` and its ``PaperFill``, ``PaperTrade`` and ``PaperEquityPoint`` rows: the
  paper (or simulated live) account the engine in :mod:`graduation.trading` trades.
- ``ReplayCursor``: the held-back bars of a bundled dataset that the replay feed releases.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from agents.market.models import Instrument
from agents.models import AgentStatus, StrategyVersion, TradingAgent

LIVE_PERMISSION = "graduation.approve_live_trading"


class EventKind(models.TextChoices):
    GRADUATE = "graduate", "Graduated"
    DEMOTE = "demote", "Demoted"
    REPIN = "repin", "Traded version re-pinned"


class GraduationEvent(models.Model):
    agent = models.ForeignKey(TradingAgent, on_delete=models.CASCADE, related_name="graduation_events")
    kind = models.CharField(max_length=10, choices=EventKind.choices)
    from_status = models.CharField(max_length=20, choices=AgentStatus.choices)
    to_status = models.CharField(max_length=20, choices=AgentStatus.choices)
    automatic = models.BooleanField(default=False)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150, default="system")
    reason = models.TextField(blank=True)
    metrics_snapshot = models.JSONField(default=dict, blank=True)
    # The version traded from this event on (None only when the agent had none).
    version = models.ForeignKey(StrategyVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    previous_version = models.ForeignKey(
        StrategyVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["agent", "created_at"], name="grad_event_agent_time_idx")]
        permissions = [("approve_live_trading", "Can move an agent to live trading")]

    def __str__(self):
        return f"{self.kind} {self.from_status} -> {self.to_status}"


class EligibilityEpisode(models.Model):
    """From the first check that found the agent eligible for ``from_status`` -> next, to the
    first that did not (or the agent's status changed)."""

    agent = models.ForeignKey(TradingAgent, on_delete=models.CASCADE, related_name="eligibility_episodes")
    from_status = models.CharField(max_length=20, choices=AgentStatus.choices)
    # Where it began: "iteration:<number>" (learning) or "bar:<ISO timestamp>" (paper).
    started_key = models.CharField(max_length=80)
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    alert_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["agent"], condition=Q(ended_at__isnull=True), name="one_open_eligibility_episode_per_agent"
            ),
        ]

    def __str__(self):
        return f"{self.agent_id} {self.from_status} since {self.started_key}"


class AccountRole(models.TextChoices):
    CHAMPION = "champion", "Champion (the traded version)"
    CHALLENGER = "challenger", "Challenger (shadow paper account)"


class PaperAccount(models.Model):
    """One agent's paper (``live=False``) or simulated-broker live (``live=True``) account.

    Money is in the instrument's quote currency. ``units`` is the signed quantity of the
    instrument held; ``position`` is the target weight in force (a fraction of equity in [-1, 1],
    set by the last fill, as the backtest's ``positions``); ``equity = cash + units x last close``.
    ``pending_target`` is the weight decided on the last bar's close, filled at the next bar's
    open. Fees and slippage are copied from the agent when the account opens.

    ``role``: the champion trades the pinned version (paper, or live on the broker); a challenger
    is a shadow paper account of the newest version approved since the pin, opened on the
    champion's bar with its costs and capital (graduation.challenger). At most one open account
    per (agent, role); a challenger is never live.
    """

    agent = models.ForeignKey(TradingAgent, on_delete=models.CASCADE, related_name="paper_accounts")
    live = models.BooleanField(default=False)
    role = models.CharField(max_length=10, choices=AccountRole.choices, default=AccountRole.CHAMPION)
    version = models.ForeignKey(StrategyVersion, null=True, on_delete=models.SET_NULL, related_name="+")
    opened_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.CharField(max_length=300, blank=True)
    initial_capital = models.FloatField()
    fee_bps = models.FloatField()
    slippage_bps = models.FloatField()
    cash = models.FloatField()
    units = models.FloatField(default=0.0)
    position = models.FloatField(default=0.0)
    equity = models.FloatField()
    peak_equity = models.FloatField()
    max_drawdown = models.FloatField(default=0.0)
    opened_bar_timestamp = models.DateTimeField(null=True, blank=True)
    last_bar_timestamp = models.DateTimeField(null=True, blank=True, help_text="The last bar processed.")
    pending_target = models.FloatField(default=0.0)
    last_desired = models.FloatField(default=0.0, help_text="The target weight of the last bar (before stops).")
    stopped = models.BooleanField(default=False, help_text="Flat after a stop until the target changes.")
    open_trade = models.JSONField(default=dict, blank=True)
    bars_processed = models.PositiveIntegerField(default=0)
    closed_trades = models.PositiveIntegerField(default=0)
    winning_trades = models.PositiveIntegerField(default=0)
    realised_pnl = models.FloatField(default=0.0)
    fees_paid = models.FloatField(default=0.0)
    ruined = models.BooleanField(default=False)
    # Optimistic concurrency: the engine writes only if nobody processed the account meanwhile.
    revision = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["agent", "role"], condition=Q(closed_at__isnull=True),
                name="one_open_paper_account_per_agent_role",
            ),
            # A shadow never reaches a broker: only the champion may be live.
            models.CheckConstraint(condition=~Q(role="challenger", live=True), name="challenger_account_is_paper"),
        ]
        indexes = [models.Index(fields=["closed_at"], name="paper_account_open_idx")]

    def __str__(self):
        kind = "live" if self.live else "paper"
        return f"{kind} {self.role} account of {self.agent_id}"


class PaperFill(models.Model):
    account = models.ForeignKey(PaperAccount, on_delete=models.CASCADE, related_name="fills")
    timestamp = models.DateTimeField(help_text="The bar whose open (or stop level) it filled at.")
    side = models.CharField(max_length=4)  # buy | sell
    quantity = models.FloatField(help_text="Units, positive.")
    price = models.FloatField(help_text="Fill price, slippage included.")
    reference_price = models.FloatField(help_text="The open, or the stop / take-profit level.")
    fee = models.FloatField()
    reason = models.CharField(max_length=12)  # signal | stop_loss | take_profit | ruin
    weight_after = models.FloatField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["account", "timestamp", "id"]
        indexes = [models.Index(fields=["account", "timestamp"], name="paper_fill_account_time_idx")]

    def __str__(self):
        return f"{self.side} {self.quantity:g} @ {self.price:g}"


class PaperTrade(models.Model):
    """A closed paper trade; same definitions as the backtest's trades (agents.backtest.engine)."""

    account = models.ForeignKey(PaperAccount, on_delete=models.CASCADE, related_name="trades")
    side = models.CharField(max_length=5)  # long | short
    entry_time = models.DateTimeField()
    exit_time = models.DateTimeField()
    entry_price = models.FloatField()
    exit_price = models.FloatField()
    quantity = models.FloatField()
    pnl = models.FloatField()
    return_pct = models.FloatField()
    bars_held = models.PositiveIntegerField()
    exit_reason = models.CharField(max_length=12)

    class Meta:
        ordering = ["account", "exit_time", "id"]
        indexes = [models.Index(fields=["account", "exit_time"], name="paper_trade_account_time_idx")]

    def __str__(self):
        return f"{self.side} {self.entry_time:%Y-%m-%d} -> {self.exit_time:%Y-%m-%d}"


class PaperEquityPoint(models.Model):
    """The account after one bar: equity marked to its close, the weight in force during it and
    the target decided on its close (what the consistency check replays)."""

    account = models.ForeignKey(PaperAccount, on_delete=models.CASCADE, related_name="equity_points")
    timestamp = models.DateTimeField()
    equity = models.FloatField()
    position = models.FloatField()
    target = models.FloatField()

    class Meta:
        ordering = ["account", "timestamp"]
        constraints = [
            models.UniqueConstraint(fields=["account", "timestamp"], name="unique_paper_point_per_account_bar"),
        ]

    def __str__(self):
        return f"{self.timestamp:%Y-%m-%d %H:%M} {self.equity:.2f}"


class ReplayCursor(models.Model):
    """Bars of a bundled dataset held back from the database and released a few per tick."""

    instrument = models.OneToOneField(Instrument, on_delete=models.CASCADE, related_name="replay_cursor")
    symbol = models.CharField(max_length=32, help_text="The bundled dataset it replays.")
    held_from = models.DateTimeField(help_text="Timestamp of the first held-back bar.")
    total = models.PositiveIntegerField()
    released = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["symbol"]

    def __str__(self):
        return f"replay {self.symbol}: {self.released}/{self.total}"

    @property
    def remaining(self):
        return self.total - self.released
