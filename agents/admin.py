"""The operator console for agents, iterations and decisions. Actions call the services."""

from django.contrib import admin, messages
from django.db.models import OuterRef, Subquery

from agents.admin_forms import SETTINGS_FIELDS, AgentAdminForm
from agents.models import (
    ActivityLog,
    Instrument,
    IterationStatus,
    IterationTrigger,
    LearningIteration,
    PriceBar,
    Refinement,
    RefinementStatus,
    StrategyVersion,
    Trade,
    TradingAgent,
)
from agents.services import agents as agent_service
from agents.services import approval, continuous, decisions, learning, scheduling
from agents.services.errors import ServiceError

RECENT_ROWS = 15


def fmt(value, digits=3):
    return "-" if value is None else f"{value:.{digits}f}"


def report(modeladmin, request, ok, failures):
    if ok:
        modeladmin.message_user(request, f"{ok} done.", messages.SUCCESS)
    for label, reason in failures:
        modeladmin.message_user(request, f"{label}: {reason}", messages.ERROR)


class OwnedAdminMixin:
    """Staff who are not superusers see only their own agents' rows."""

    owner_path = "agent__owner"

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return qs if request.user.is_superuser else qs.filter(**{self.owner_path: request.user})


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin):
    list_display = ["symbol", "name", "bar_interval", "bars_per_year", "data_version"]
    search_fields = ["symbol", "name"]
    readonly_fields = ["data_version"]


@admin.register(PriceBar)
class PriceBarAdmin(admin.ModelAdmin):
    list_display = ["instrument", "timestamp", "open", "high", "low", "close", "volume"]
    list_filter = ["instrument"]
    list_select_related = ["instrument"]
    date_hierarchy = "timestamp"
    show_full_result_count = False


class RecentInline(admin.TabularInline):
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        recent = qs.model.objects.filter(agent=OuterRef("agent")).order_by(*self.recent_order).values("pk")
        # Only the newest rows: an agent with 500 iterations must not render 500 inline rows.
        return qs.filter(pk__in=Subquery(recent[:RECENT_ROWS])).order_by(*self.recent_order)

    def has_add_permission(self, request, obj=None):
        return False


class VersionInline(RecentInline):
    model = StrategyVersion
    fk_name = "agent"
    recent_order = ("-number",)
    fields = ["number", "origin", "params", "note", "created_by", "created_at"]
    readonly_fields = fields


class IterationInline(RecentInline):
    model = LearningIteration
    recent_order = ("-number",)
    fields = ["number", "trigger", "status", "score", "improvement", "refiner_used", "duration_ms", "error"]
    readonly_fields = fields


class PendingRefinementInline(RecentInline):
    model = Refinement
    recent_order = ("-score",)
    verbose_name_plural = "Pending refinements"
    fields = ["iteration", "proposed_params", "score", "source", "rationale", "status"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).filter(status=RefinementStatus.PENDING).select_related("iteration")


@admin.register(TradingAgent)
class TradingAgentAdmin(OwnedAdminMixin, admin.ModelAdmin):
    owner_path = "owner"
    list_display = [
        "name", "owner", "instrument", "strategy_template", "status", "version", "last_score",
        "continuous_state", "auto_learn_enabled", "auto_approve_enabled",
    ]
    list_filter = ["status", "strategy_template", "instrument", "continuous_state", "auto_learn_enabled", "refiner"]
    search_fields = ["name", "owner__username", "instrument__symbol"]
    list_select_related = ["owner", "instrument", "current_version"]
    form = AgentAdminForm
    readonly_fields = ["id", "status", "current_version", "schedule_description", "next_scheduled_iteration",
                       "continuous_state", "continuous_stop_reason", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["owner", "name", "description", "instrument", "strategy_template", "params", "status",
                           "current_version"]}),
        ("Learning", {"fields": ["refiner", "objective", "candidates_per_iteration", "train_fraction", "fee_bps",
                                 "slippage_bps", "initial_capital", "random_seed"]}),
        ("Autonomy", {"fields": ["auto_learn", "learning_cron", "learning_timezone", "schedule_description",
                                 "next_scheduled_iteration", "auto_approve", "thresholds", "continuous",
                                 "continuous_state", "continuous_stop_reason", "max_iterations_per_day",
                                 "min_iteration_gap_minutes", "convergence_threshold"]}),
    ]
    inlines = [PendingRefinementInline, IterationInline, VersionInline]
    actions = ["run_iteration_now", "apply_approved_refinements", "start_continuous", "stop_continuous",
               "enable_auto_learn", "disable_auto_learn", "enable_auto_approve", "disable_auto_approve"]

    def get_fieldsets(self, request, obj=None):
        if obj is None:  # status, version and schedule state exist once the agent does
            hidden = {"status", "current_version", "schedule_description", "next_scheduled_iteration",
                      "continuous_state", "continuous_stop_reason"}
            return [(title, {"fields": [f for f in opts["fields"] if f not in hidden]})
                    for title, opts in self.fieldsets]
        return self.fieldsets

    @admin.display(description="schedule")
    def schedule_description(self, obj):
        return scheduling.describe_schedule(obj) if obj.learning_schedule else "-"

    def get_queryset(self, request):
        last = LearningIteration.objects.filter(agent=OuterRef("pk"), status=IterationStatus.SUCCEEDED).order_by(
            "-number"
        )
        return super().get_queryset(request).annotate(_last_score=Subquery(last.values("score")[:1]))

    @admin.display(description="version")
    def version(self, obj):
        return f"v{obj.current_version.number}" if obj.current_version else "-"

    @admin.display(description="last score", ordering="_last_score")
    def last_score(self, obj):
        return fmt(obj._last_score)

    @admin.action(description="Run an iteration now (queued for a worker)")
    def run_iteration_now(self, request, queryset):
        ok, failures = 0, []
        for agent in queryset:
            try:
                iteration, created = learning.iteration_start(
                    agent, trigger=IterationTrigger.MANUAL, requested_by=request.user
                )
                if created:
                    ok += 1
                else:
                    failures.append((agent.name, f"iteration #{iteration.number} is already {iteration.status}"))
            except ServiceError as exc:
                failures.append((agent.name, str(exc)))
        report(self, request, ok, failures)

    @admin.action(description="Apply the best approved refinement")
    def apply_approved_refinements(self, request, queryset):
        ok, failures = 0, []
        for agent in queryset:
            try:
                decisions.refinements_apply(agent, actor=request.user)
                ok += 1
            except ServiceError as exc:
                failures.append((agent.name, str(exc)))
        report(self, request, ok, failures)

    @admin.action(description="Start continuous learning")
    def start_continuous(self, request, queryset):
        self._each(request, queryset, lambda agent: continuous.continuous_start(agent, actor=request.user))

    @admin.action(description="Stop continuous learning")
    def stop_continuous(self, request, queryset):
        self._each(request, queryset, lambda agent: continuous.continuous_stop(agent, actor=request.user))

    @admin.action(description="Enable auto-learn (on each agent's schedule)")
    def enable_auto_learn(self, request, queryset):
        self._each(request, queryset, lambda agent: scheduling.auto_learn_enable(agent, actor=request.user))

    @admin.action(description="Disable auto-learn")
    def disable_auto_learn(self, request, queryset):
        self._each(request, queryset, lambda agent: scheduling.auto_learn_disable(agent, actor=request.user))

    @admin.action(description="Enable auto-approve")
    def enable_auto_approve(self, request, queryset):
        self._each(request, queryset, lambda agent: approval.auto_approve_enable(agent, actor=request.user))

    @admin.action(description="Disable auto-approve")
    def disable_auto_approve(self, request, queryset):
        self._each(request, queryset, lambda agent: approval.auto_approve_disable(agent, actor=request.user))

    def _each(self, request, queryset, service):
        ok, failures = 0, []
        for agent in queryset:
            try:
                service(agent)
                ok += 1
            except ServiceError as exc:
                failures.append((agent.name, str(exc)))
        report(self, request, ok, failures)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        settings_values = {k: data[k] for k in SETTINGS_FIELDS if k in data and k != "name"}
        if change:
            agent = TradingAgent.objects.get(pk=obj.pk)
            values = {k: data[k] for k in form.changed_data if k in SETTINGS_FIELDS}
            agent = agent_service.agent_update(agent, actor=request.user, **values)
        else:
            agent = agent_service.agent_create(
                owner=data["owner"], name=data["name"], instrument=data["instrument"],
                strategy_template=data["strategy_template"], params=data.get("params") or {}, **settings_values,
            )
        apply_autonomy(agent, form.autonomy_changes(), request.user)
        obj.pk = agent.pk
        obj.refresh_from_db()

    def delete_model(self, request, obj):
        agent_service.agent_delete(obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for agent in queryset:
            agent_service.agent_delete(agent, actor=request.user)


def apply_autonomy(agent, changes, user):
    """Perform the autonomy part of an agent form through the services, in a safe order."""
    if changes["schedule"]:
        cron, tz = changes["schedule"]
        scheduling.schedule_set(agent, cron=cron, timezone=tz, actor=user)
        agent.refresh_from_db()
    if changes["auto_learn"] != agent.auto_learn_enabled:
        (scheduling.auto_learn_enable if changes["auto_learn"] else scheduling.auto_learn_disable)(agent, actor=user)
        agent.refresh_from_db()
    if changes["thresholds"] is not None:
        approval.thresholds_set(agent, changes["thresholds"], actor=user)
        agent.refresh_from_db()
    if changes["auto_approve"] != agent.auto_approve_enabled:
        (approval.auto_approve_enable if changes["auto_approve"] else approval.auto_approve_disable)(agent, actor=user)
        agent.refresh_from_db()
    if changes["continuous"] != agent.continuous_learning_enabled:
        (continuous.continuous_start if changes["continuous"] else continuous.continuous_stop)(agent, actor=user)


@admin.register(StrategyVersion)
class StrategyVersionAdmin(OwnedAdminMixin, admin.ModelAdmin):
    list_display = ["agent", "number", "origin", "created_by", "created_at"]
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
        ok, failures = 0, []
        for version in queryset.select_related("agent"):
            try:
                decisions.version_rollback(version.agent, version, actor=request.user)
                ok += 1
            except ServiceError as exc:
                failures.append((f"{version.agent} v{version.number}", str(exc)))
        report(self, request, ok, failures)


@admin.register(LearningIteration)
class LearningIterationAdmin(OwnedAdminMixin, admin.ModelAdmin):
    list_display = ["agent", "number", "trigger", "status", "score_display", "improvement_display",
                    "refiner_used", "duration_ms", "queued_at"]
    list_filter = ["status", "trigger", "refiner_used"]
    search_fields = ["agent__name"]
    list_select_related = ["agent", "version"]
    date_hierarchy = "queued_at"
    readonly_fields = [f.name for f in LearningIteration._meta.fields]

    def has_add_permission(self, request):
        return False

    @admin.display(description="score", ordering="score")
    def score_display(self, obj):
        return fmt(obj.score)

    @admin.display(description="improvement", ordering="improvement")
    def improvement_display(self, obj):
        return fmt(obj.improvement)


@admin.register(Refinement)
class RefinementAdmin(OwnedAdminMixin, admin.ModelAdmin):
    list_display = ["id", "agent", "iteration", "status", "score_display", "source", "decided_automatically",
                    "created_at"]
    list_filter = ["status", "source", "decided_automatically"]
    search_fields = ["agent__name"]
    list_select_related = ["agent", "iteration"]
    readonly_fields = [f.name for f in Refinement._meta.fields]
    actions = ["approve", "reject"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="score", ordering="score")
    def score_display(self, obj):
        return fmt(obj.score)

    def _decide(self, request, queryset, service):
        ok, failures = 0, []
        for refinement in queryset.select_related("agent"):
            try:
                service(refinement, actor=request.user)
                ok += 1
            except ServiceError as exc:
                failures.append((f"refinement {refinement.pk}", str(exc)))
        report(self, request, ok, failures)

    @admin.action(description="Approve selected refinements")
    def approve(self, request, queryset):
        self._decide(request, queryset, decisions.refinement_approve)

    @admin.action(description="Reject selected refinements")
    def reject(self, request, queryset):
        self._decide(request, queryset, decisions.refinement_reject)


@admin.register(Trade)
class TradeAdmin(admin.ModelAdmin):
    list_display = ["iteration", "side", "entry_time", "exit_time", "return_pct", "pnl", "bars_held"]
    list_select_related = ["iteration__agent"]
    list_filter = ["side"]

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return qs if request.user.is_superuser else qs.filter(iteration__agent__owner=request.user)


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
