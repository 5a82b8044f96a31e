"""Admin of the lab's records: instruments and bars, versions, iterations, refinements, trades,
activity. Actions call the services."""

from django.contrib import admin

from agents.admin.bar_import import BarImportAdminMixin
from agents.admin.common import OwnedAdminMixin, fmt, run_per_row
from agents.market.models import BarFeedConfig, BarImport
from agents.models import (
    ActivityLog,
    ExamReading,
    Instrument,
    LearningIteration,
    PriceBar,
    Refinement,
    StrategyVersion,
    Trade,
)
from agents.services import decisions, manual_approval


@admin.register(Instrument)
class InstrumentAdmin(BarImportAdminMixin, admin.ModelAdmin):
    list_display = ["symbol", "name", "bar_interval", "bars_per_year", "has_intrabar_range", "data_version"]
    search_fields = ["symbol", "name"]
    readonly_fields = ["data_version", "has_intrabar_range", "created_by"]


@admin.register(PriceBar)
class PriceBarAdmin(admin.ModelAdmin):
    list_display = ["instrument", "timestamp", "open", "high", "low", "close", "volume"]
    list_filter = ["instrument"]
    list_select_related = ["instrument"]
    date_hierarchy = "timestamp"
    show_full_result_count = False


@admin.register(StrategyVersion)
class StrategyVersionAdmin(OwnedAdminMixin, admin.ModelAdmin):
    list_display = ["agent", "number", "origin", "note", "created_by", "created_at"]
    list_filter = ["origin"]
    search_fields = ["agent__name"]
    list_select_related = ["agent", "created_by"]
    readonly_fields = ["agent", "number", "params", "parent", "origin", "metrics", "note", "created_by", "created_at"]
    actions = ["rollback_to"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Roll back to this version (adds a new version)")
    def rollback_to(self, request, queryset):
        def rollback(version):
            new = decisions.version_rollback(version.agent, version, actor=request.user)
            return f"rolled back as v{new.number}"

        run_per_row(self, request, queryset.select_related("agent"), rollback,
                    label=lambda v: f"{v.agent} v{v.number}")


@admin.register(LearningIteration)
class LearningIterationAdmin(OwnedAdminMixin, admin.ModelAdmin):
    list_display = ["agent", "number", "trigger", "status", "score_display", "dsr_display", "pbo_display",
                    "selection_display", "improvement_display", "refiner_used", "duration_ms", "queued_at"]
    list_filter = ["status", "trigger", "refiner_used"]
    search_fields = ["agent__name"]
    list_select_related = ["agent", "version"]
    date_hierarchy = "queued_at"
    readonly_fields = [f.name for f in LearningIteration._meta.fields]

    def has_add_permission(self, request):
        return False

    @admin.display(description="sealed test (headline)", ordering="score")
    def score_display(self, obj):
        return fmt(obj.score)

    @admin.display(description="DSR", ordering="dsr")
    def dsr_display(self, obj):
        return fmt(obj.dsr)

    @admin.display(description="PBO", ordering="pbo")
    def pbo_display(self, obj):
        return fmt(obj.pbo)

    @admin.display(description="selection (in-sample)", ordering="selection_score")
    def selection_display(self, obj):
        return fmt(obj.selection_score)

    @admin.display(description="improvement", ordering="improvement")
    def improvement_display(self, obj):
        return fmt(obj.improvement)


@admin.register(Refinement)
class RefinementAdmin(OwnedAdminMixin, admin.ModelAdmin):
    list_display = ["id", "agent", "iteration", "status", "score_display", "test_display", "dsr_display",
                    "source", "decided_automatically", "created_at"]
    list_filter = ["status", "source", "decided_automatically"]
    search_fields = ["agent__name"]
    list_select_related = ["agent", "iteration"]
    readonly_fields = [f.name for f in Refinement._meta.fields]
    actions = ["approve", "reject"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="selection score (in-sample)", ordering="score")
    def score_display(self, obj):
        return fmt(obj.score)

    @admin.display(description="sealed test", ordering="test_score")
    def test_display(self, obj):
        return "not read" if obj.test_score is None else fmt(obj.test_score)

    @admin.display(description="DSR", ordering="dsr")
    def dsr_display(self, obj):
        return fmt(obj.dsr)

    def _decide(self, request, queryset, service, verb):
        def decide(refinement):
            service(refinement, actor=request.user)
            return verb

        run_per_row(self, request, queryset.select_related("agent"), decide, label=lambda r: f"refinement {r.pk}")

    @admin.action(description="Approve selected refinements")
    def approve(self, request, queryset):
        self._decide(request, queryset, manual_approval.refinement_approve_with_evidence, "approved")

    @admin.action(description="Reject selected refinements")
    def reject(self, request, queryset):
        self._decide(request, queryset, decisions.refinement_reject, "rejected")


@admin.register(Trade)
class TradeAdmin(OwnedAdminMixin, admin.ModelAdmin):
    list_display = ["iteration", "side", "entry_time", "exit_time", "return_pct", "pnl", "bars_held"]
    list_select_related = ["iteration__agent"]
    list_filter = ["side"]
    owner_path = "iteration__agent__owner"


@admin.register(ExamReading)
class ExamReadingAdmin(OwnedAdminMixin, admin.ModelAdmin):
    """Every reading of a sealed test window: the gates' count of how often the exam was used."""

    list_display = ["created_at", "agent", "purpose", "version", "refinement", "window_start", "window_end", "bars",
                    "score"]
    list_filter = ["purpose"]
    search_fields = ["agent__name"]
    list_select_related = ["agent", "version"]
    readonly_fields = [f.name for f in ExamReading._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ActivityLog)
class ActivityLogAdmin(OwnedAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "agent", "event", "actor_label", "message"]
    list_filter = ["event", "actor_label"]
    search_fields = ["agent__name", "message"]
    list_select_related = ["agent"]
    readonly_fields = [f.name for f in ActivityLog._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class _ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(BarFeedConfig)
class BarFeedConfigAdmin(_ReadOnlyAdmin):
    """Feeds are changed with `manage.py bar_feed` (which keeps their beat rows in step); shown here."""

    list_display = ["instrument", "exchange", "market_symbol", "timeframe", "poll_seconds", "enabled",
                    "bars_imported", "last_polled_at", "last_success_at", "last_error"]
    list_select_related = ["instrument"]
    list_filter = ["enabled", "exchange"]


@admin.register(BarImport)
class BarImportAdmin(OwnedAdminMixin, _ReadOnlyAdmin):
    owner_path = "requested_by"  # as in the API: an import is seen by who asked for it
    list_display = ["symbol", "filename", "size", "status", "phase", "done", "total", "requested_by", "created_at",
                    "finished_at"]
    list_filter = ["status"]
    list_select_related = ["requested_by"]
