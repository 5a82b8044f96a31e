"""Tournaments: agents ranked on one common sealed window and on their forward records.

A `Tournament` fixes, at creation, the common window [window_start, window_end] (inside every
entrant's sealed test window) and optionally a round schedule (cron + zone). `TournamentEntry`
rows are its entrants; `TournamentRound` rows its rounds (one learning iteration per entrant);
`TournamentStanding` rows the last standings computed (tournaments.services.standings), with the
tournament-wide figures (deflated Sharpe of the leader, p of the leader's edge) on the tournament.
"""

from django.conf import settings
from django.db import models

from agents.models import TradingAgent


class TournamentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    FINISHED = "finished", "Finished"


class Tournament(models.Model):
    name = models.CharField(max_length=120)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tournaments")
    description = models.TextField(blank=True, default="")
    status = models.CharField(max_length=10, choices=TournamentStatus.choices, default=TournamentStatus.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    window_start = models.DateTimeField(help_text="First bar of the common sealed window (UTC).")
    window_end = models.DateTimeField(help_text="Last bar of the common sealed window (UTC).")
    round_schedule = models.CharField(max_length=120, blank=True, default="",
                                      help_text="Five-field cron of the rounds; empty: rounds only on demand.")
    schedule_timezone = models.CharField(max_length=64, default="UTC")
    rounds_run = models.PositiveIntegerField(default=0)
    leader = models.ForeignKey(TradingAgent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The tournament-wide figures of the last standings (deflation, the leader's edge), and when.
    summary = models.JSONField(default=dict, blank=True)
    standings_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="tournament_owner_name_unique")]

    def __str__(self):
        return self.name


class TournamentEntry(models.Model):
    tournament = models.ForeignKey(Tournament, on_delete=models.CASCADE, related_name="entries")
    agent = models.ForeignKey(TradingAgent, on_delete=models.CASCADE, related_name="tournament_entries")
    joined_at = models.DateTimeField(auto_now_add=True)
    # The newest bar of the agent's instrument when it joined: its forward record is what its
    # account earned on the bars after this one.
    forward_from = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["tournament", "agent"], name="tournament_entry_unique")]

    def __str__(self):
        return f"{self.agent} in {self.tournament}"


class TournamentRound(models.Model):
    tournament = models.ForeignKey(Tournament, on_delete=models.CASCADE, related_name="rounds")
    number = models.PositiveIntegerField()
    # "schedule:<slot UTC>" for a beat fire, "manual:<n>" on demand: one round per key.
    key = models.CharField(max_length=64)
    trigger = models.CharField(max_length=20)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    iteration_ids = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["tournament", "number"], name="tournament_round_number_unique"),
            models.UniqueConstraint(fields=["tournament", "key"], name="tournament_round_key_unique"),
        ]

    def __str__(self):
        return f"round {self.number} of {self.tournament}"


class TournamentStanding(models.Model):
    """One entrant's row of the last standings (rewritten whole by each recomputation)."""

    tournament = models.ForeignKey(Tournament, on_delete=models.CASCADE, related_name="standings")
    agent = models.ForeignKey(TradingAgent, on_delete=models.CASCADE, related_name="+")
    rank = models.PositiveIntegerField()
    score = models.FloatField(help_text="Per-bar Sharpe of the evidence (the ranking key).")
    version_number = models.PositiveIntegerField(null=True, blank=True)
    window = models.JSONField(default=dict, help_text="Common-window figures: sharpe, return, drawdown, bars.")
    forward = models.JSONField(default=dict, help_text="Forward (paper/live) figures since the entrant joined.")
    equity = models.JSONField(default=list, help_text="Sparkline series: equity of the evidence, from 1.")
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["rank", "id"]
        constraints = [models.UniqueConstraint(fields=["tournament", "agent"], name="tournament_standing_unique")]

    def __str__(self):
        return f"#{self.rank} {self.agent} in {self.tournament}"
