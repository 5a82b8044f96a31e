"""The tournament pages of the console: the changelist, and the leaderboard on the change view.

The leaderboard is the stored standings (tournaments.services.standings): rank, agent, score,
the common window and the forward record, the leader's deflated Sharpe over every entrant's
trials, p(the leader's edge over the runner-up is noise), and an inline-SVG equity sparkline per
entrant (console.charts.sparkline). Actions call the tournaments services. Tournaments are
created through the API or the service (they need the entrants and the window validated together).
"""

from django.contrib import admin
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html

from agents.admin.common import OwnedAdminMixin, run_per_row
from console.charts import sparkline
from tournaments.models import Tournament, TournamentStanding
from tournaments.services.rounds import round_start
from tournaments.services.standings import standings_recompute
from tournaments.services.tournaments import tournament_delete, tournament_finish, tournament_update


def _pct(value):
    return f"{value * 100:.2f}%"


def leaderboard(tournament):
    """What templates/admin/tournaments/tournament/change_form.html shows."""
    rows = []
    for row in TournamentStanding.objects.filter(tournament=tournament).select_related("agent__instrument"):
        forward = row.forward
        rows.append({
            "rank": row.rank, "agent": row.agent, "version": row.version_number,
            "url": reverse("admin:agents_tradingagent_change", args=[row.agent_id]),
            "score": f"{row.score:.4f}", "window_sharpe": f"{row.window['sharpe_annualised']:.2f}",
            "window_return": _pct(row.window["total_return"]), "window_drawdown": _pct(row.window["max_drawdown"]),
            "window_bars": row.window["bars"], "still_sealed": row.window["still_sealed"],
            "forward_bars": forward["bars"],
            "forward_sharpe": f"{forward['sharpe_annualised']:.2f}" if forward["bars"] else "-",
            "forward_return": _pct(forward["total_return"]) if forward["bars"] else "-",
            "forward_used": forward.get("used_in_score", False), "trading": forward.get("trading", False),
            "spark": sparkline(row.equity, label=f"{row.agent.name} equity"),
        })
    summary = tournament.summary or {}
    edge = summary.get("edge") or {}
    return {
        "rows": rows, "summary": summary, "computed_at": tournament.standings_at,
        "dsr": f"{summary['deflated_sharpe']:.4f}" if "deflated_sharpe" in summary else "-",
        "p_noise": f"{edge['p_value']:.4f}" if edge else "-", "edge": edge,
    }


@admin.register(Tournament)
class TournamentAdmin(OwnedAdminMixin, admin.ModelAdmin):
    owner_path = "owner"
    list_display = ["name", "status", "entrant_count", "leader_link", "rounds_run", "round_schedule", "standings_at"]
    list_filter = ["status"]
    search_fields = ["name", "description"]
    readonly_fields = ["name", "owner", "status", "created_at", "window_start", "window_end", "round_schedule",
                       "schedule_timezone", "rounds_run", "leader", "standings_at"]
    fields = ["name", "owner", "description", "status", "created_at", "window_start", "window_end",
              "round_schedule", "schedule_timezone", "rounds_run", "leader", "standings_at"]
    actions = ["recompute_standings", "run_round_now", "finish_tournaments"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("leader").annotate(_entrants=Count("entries"))

    def has_add_permission(self, request):
        return False  # through the API (POST /api/tournaments) or tournaments.services.tournament_create

    @admin.display(description="entrants", ordering="_entrants")
    def entrant_count(self, obj):
        return obj._entrants

    @admin.display(description="leader")
    def leader_link(self, obj):
        if obj.leader is None:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("admin:agents_tradingagent_change", args=[obj.leader_id]),
                           obj.leader.name)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        tournament = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if tournament is not None:
            context["leaderboard"] = leaderboard(tournament)
        return super().change_view(request, object_id, form_url, extra_context=context)

    def save_model(self, request, obj, form, change):
        tournament_update(obj, description=form.cleaned_data.get("description", ""))

    def delete_model(self, request, obj):
        tournament_delete(obj)  # the beat row goes too

    def delete_queryset(self, request, queryset):
        for tournament in queryset:
            tournament_delete(tournament)

    @admin.action(description="Recompute the standings", permissions=["change"])
    def recompute_standings(self, request, queryset):
        run_per_row(self, request, queryset, lambda t: (
            f"standings recomputed, leader {standings_recompute(t.pk).leader}"))

    @admin.action(description="Run a round now (one iteration per entrant)", permissions=["change"])
    def run_round_now(self, request, queryset):
        def start(tournament):
            round_, created = round_start(tournament, requested_by=request.user)
            return f"round {round_.number} {'started' if created else 'is still running'}"
        run_per_row(self, request, queryset, start)

    @admin.action(description="Finish (no more rounds)", permissions=["change"])
    def finish_tournaments(self, request, queryset):
        run_per_row(self, request, queryset, lambda t: f"{tournament_finish(t).status}")
