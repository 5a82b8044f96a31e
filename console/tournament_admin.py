"""The tournament pages of the console: the changelist, and the leaderboard on the change view.

The leaderboard is the stored standings (tournaments.services.standings): rank, agent, score,
the common window and the forward record, the leader's deflated Sharpe over every entrant's
trials, p(the leader's edge over the runner-up is noise), and an inline-SVG equity sparkline per
entrant (console.charts.sparkline). Actions call the tournaments services.

The add page creates through tournament_create (console.tournament_forms: the service's refusals
on their fields) and computes the first standings once that commits. The tournament page lists
the entrants with a remove button and an "add entrants" picker (the agents the user sees that are
not in yet), both posting to the entrants services; their refusals come back as messages.
"""

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from agents.admin.common import OwnedAdminMixin, run_per_row
from console.charts import sparkline
from console.tournament_forms import EntrantAddForm, TournamentAddForm
from core.errors import ServiceError
from tournaments.models import Tournament, TournamentStanding, TournamentStatus
from tournaments.services.entrants import tournament_entrant_remove, tournament_entrants_add
from tournaments.services.rounds import round_start
from tournaments.services.standings import standings_recompute
from tournaments.services.tournaments import tournament_delete, tournament_finish, tournament_update

ADD_FIELDS = ["name", "agents", "description", "window_start", "window_end", "round_schedule", "schedule_timezone"]


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


def entrants_panel(request, tournament, can_change):
    """The tournament page's entrants: each with its remove URL, and the picker of agents to add."""
    entries = tournament.entries.select_related("agent__instrument").order_by("agent__name")
    remove = "admin:tournaments_tournament_entrant_remove"
    return {
        "can_change": can_change and tournament.status == TournamentStatus.ACTIVE,
        "rows": [{"entry": entry, "url": reverse("admin:agents_tradingagent_change", args=[entry.agent_id]),
                  "remove": reverse(remove, args=[tournament.pk, entry.agent_id])}
                 for entry in entries],
        "add_url": reverse("admin:tournaments_tournament_entrants_add", args=[tournament.pk]),
        "form": EntrantAddForm(user=request.user, tournament=tournament),
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

    def get_fields(self, request, obj=None):
        return ADD_FIELDS if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = TournamentAddForm
        form = super().get_form(request, obj, **kwargs)
        form.user = request.user  # a class made for this request: the entrants are this user's agents
        return form

    def get_urls(self):
        own = [
            path("<path:object_id>/entrants/add/", self.admin_site.admin_view(self.entrants_add_view),
                 name="tournaments_tournament_entrants_add"),
            path("<path:object_id>/entrants/<uuid:agent_id>/remove/",
                 self.admin_site.admin_view(self.entrant_remove_view), name="tournaments_tournament_entrant_remove"),
        ]
        return own + super().get_urls()

    def _changeable(self, request, object_id):
        tournament = self.get_object(request, object_id)  # another owner's is None: not found
        if tournament is None or not self.has_change_permission(request, tournament):
            return None
        return tournament

    def _back(self, object_id):
        return HttpResponseRedirect(reverse("admin:tournaments_tournament_change", args=[object_id]))

    def entrants_add_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        tournament = self._changeable(request, object_id)
        if tournament is None:
            return HttpResponseRedirect(reverse("admin:tournaments_tournament_changelist"))
        form = EntrantAddForm(request.POST, user=request.user, tournament=tournament)
        if not form.is_valid():
            self.message_user(request, f"agents: {'; '.join(form.errors.get('agents', []))}", messages.ERROR)
            return self._back(object_id)
        try:
            tournament_entrants_add(tournament, agent_ids=[a.pk for a in form.cleaned_data["agents"]],
                                    user=request.user)
        except ServiceError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            names = ", ".join(a.name for a in form.cleaned_data["agents"])
            self.message_user(request, f"added {names}; standings recomputed", messages.SUCCESS)
        return self._back(object_id)

    def entrant_remove_view(self, request, object_id, agent_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        tournament = self._changeable(request, object_id)
        if tournament is None:
            return HttpResponseRedirect(reverse("admin:tournaments_tournament_changelist"))
        try:
            tournament_entrant_remove(tournament, agent_id=agent_id)
        except ServiceError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, "entrant removed; standings recomputed", messages.SUCCESS)
        return self._back(object_id)

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
            context["entrants"] = entrants_panel(request, tournament, self.has_change_permission(request, tournament))
        return super().change_view(request, object_id, form_url, extra_context=context)

    def save_model(self, request, obj, form, change):
        if not change:  # TournamentAddForm created it through tournament_create while validating
            transaction.on_commit(lambda: standings_recompute(obj.pk))  # backtests: after the write
            return
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
