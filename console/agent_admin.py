"""The agent admin: the changelist with its actions, and the agent page with the console.

The agent page (change view) shows the console (console.panels) above Django's form; its
buttons post to the control views of console.controls. Actions and saves call the services.
"""

from django.contrib import admin
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils.html import format_html

from agents import agent_settings
from agents.admin.common import OwnedAdminMixin, fmt, run_per_row
from agents.models import IterationStatus, IterationTrigger, LearningIteration, TradingAgent
from agents.selectors import sees_everything
from agents.services import agents as agent_service
from agents.services import approval, continuous, decisions, dispatch, scheduling
from alerts.models import AgentAlert
from alerts.services import alerts_acknowledge
from console import panels
from console.controls import ConsoleControlsMixin
from console.forms import SETTINGS_FIELDS, AgentAdminForm
from core.errors import Conflict

NEW_AGENT_HIDDEN = {"status", "current_version", "schedule_description", "next_scheduled_iteration",
                    "continuous_state", "continuous_stop_reason"}


def open_alerts_count():
    counted = (AgentAlert.objects.filter(agent=OuterRef("pk"), acknowledged=False).order_by()
               .values("agent").annotate(n=Count("pk")).values("n"))
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


class OpenAlertsFilter(admin.SimpleListFilter):
    title = "unacknowledged alerts"
    parameter_name = "open_alerts"

    def lookups(self, request, model_admin):
        return [("yes", "Some"), ("no", "None")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(_open_alerts__gt=0)
        if self.value() == "no":
            return queryset.filter(_open_alerts=0)
        return queryset


@admin.register(TradingAgent)
class TradingAgentAdmin(ConsoleControlsMixin, OwnedAdminMixin, admin.ModelAdmin):
    owner_path = "owner"
    list_display = ["name", "market", "status", "version", "last_score", "learning_state", "open_alerts",
                    "auto_approve_enabled"]
    list_filter = ["status", "continuous_state", "auto_learn_enabled", "auto_approve_enabled", OpenAlertsFilter,
                   "strategy_template", "instrument", "refiner"]
    search_fields = ["name", "description", "owner__username", "instrument__symbol"]
    list_select_related = ["owner", "instrument", "current_version"]
    form = AgentAdminForm
    readonly_fields = ["id", "status", "current_version", "schedule_description", "next_scheduled_iteration",
                       "continuous_state", "continuous_stop_reason", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["owner", *agent_settings.names("identity"), "instrument", "strategy_template", "params",
                           "status", "current_version"]}),
        ("Learning", {"fields": [*agent_settings.names("learning"), "related_instruments"]}),
        ("Autonomy", {"fields": ["auto_learn", "learning_cron", "learning_timezone", "schedule_description",
                                 "next_scheduled_iteration", "auto_approve", "thresholds", "continuous",
                                 "continuous_state", "continuous_stop_reason", *agent_settings.names("autonomy")]}),
    ]
    actions = ["run_iteration_now", "enable_auto_learn", "disable_auto_learn", "start_continuous",
               "stop_continuous", "acknowledge_alerts", "apply_approved_refinements", "enable_auto_approve",
               "disable_auto_approve"]

    def get_fieldsets(self, request, obj=None):
        if obj is None:  # status, version and schedule state exist once the agent does
            return [(title, {"fields": [f for f in opts["fields"] if f not in NEW_AGENT_HIDDEN]})
                    for title, opts in self.fieldsets]
        # On the agent page the console's panels are the controls; the form edits settings.
        fieldsets = [(title, dict(opts)) for title, opts in self.fieldsets]
        fieldsets[-1][1].update(classes=["collapse"], description=(
            "The Autonomy panel above does the same through the same services, one switch at a time."))
        return fieldsets

    def get_queryset(self, request):
        last = LearningIteration.objects.filter(agent=OuterRef("pk"), status=IterationStatus.SUCCEEDED).order_by(
            "-number"
        )
        return super().get_queryset(request).annotate(
            _last_score=Subquery(last.values("score")[:1]), _open_alerts=open_alerts_count()
        )

    # --- columns ------------------------------------------------------------------------------
    def get_list_display(self, request):
        # Only those who see other people's agents need the owner column.
        columns = list(super().get_list_display(request))
        return [columns[0], "owner", *columns[1:]] if sees_everything(request.user) else columns

    @admin.display(description="instrument · strategy", ordering="instrument__symbol")
    def market(self, obj):
        return f"{obj.instrument.symbol} · {obj.strategy_template}"

    @admin.display(description="schedule")
    def schedule_description(self, obj):
        return scheduling.describe_schedule(obj) if obj.learning_schedule else "-"

    @admin.display(description="version")
    def version(self, obj):
        return f"v{obj.current_version.number}" if obj.current_version else "-"

    @admin.display(description="last score", ordering="_last_score")
    def last_score(self, obj):
        return fmt(obj._last_score)

    @admin.display(description="learning", ordering="continuous_state")
    def learning_state(self, obj):
        parts = [obj.get_continuous_state_display().lower()] if obj.continuous_learning_enabled or \
            obj.continuous_state != "stopped" else []
        if obj.auto_learn_enabled:
            parts.append("scheduled")
        return ", ".join(parts) or "manual"

    @admin.display(description="open alerts", ordering="_open_alerts")
    def open_alerts(self, obj):
        count = obj._open_alerts
        if not count:
            return "0"
        url = reverse("admin:alerts_agentalert_changelist")
        return format_html('<a href="{}?agent__id__exact={}&amp;acknowledged__exact=0"><strong>{}</strong></a>',
                           url, obj.pk, count)

    # --- the agent page -----------------------------------------------------------------------
    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # Only when the page is drawn (not on a successful save, which redirects).
        if obj is not None and not add:
            context["console"] = panels.agent_page(obj, request)
            context["console_can_change"] = self.has_change_permission(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- actions: one service per row, a message per row ----------------------------------------
    @admin.action(description="Run an iteration now (queued for a worker)")
    def run_iteration_now(self, request, queryset):
        def run(agent):
            iteration, created = dispatch.iteration_start(
                agent, trigger=IterationTrigger.MANUAL, requested_by=request.user
            )
            if not created:
                raise Conflict({"iteration": f"#{iteration.number} is already {iteration.status}"})
            return f"iteration #{iteration.number} queued"

        run_per_row(self, request, queryset, run)

    @admin.action(description="Enable auto-learn (on each agent's schedule)")
    def enable_auto_learn(self, request, queryset):
        def enable(agent):
            scheduling.auto_learn_enable(agent, actor=request.user)
            return f"auto-learn on, next run {agent.next_scheduled_iteration:%Y-%m-%d %H:%M} UTC"

        run_per_row(self, request, queryset, enable)

    @admin.action(description="Disable auto-learn")
    def disable_auto_learn(self, request, queryset):
        self._switch(request, queryset, scheduling.auto_learn_disable, "auto-learn off")

    @admin.action(description="Start continuous learning")
    def start_continuous(self, request, queryset):
        def start(agent):
            continuous.continuous_start(agent, actor=request.user)
            return f"continuous learning on ({agent.continuous_state})"

        run_per_row(self, request, queryset, start)

    @admin.action(description="Stop continuous learning")
    def stop_continuous(self, request, queryset):
        self._switch(request, queryset, continuous.continuous_stop, "continuous learning stopped")

    @admin.action(description="Acknowledge the selected agents' alerts")
    def acknowledge_alerts(self, request, queryset):
        def acknowledge(agent):
            count = alerts_acknowledge(AgentAlert.objects.filter(agent=agent), user=request.user)
            return f"{count} alert{'s' if count != 1 else ''} acknowledged"

        run_per_row(self, request, queryset, acknowledge)

    @admin.action(description="Apply the best approved refinement")
    def apply_approved_refinements(self, request, queryset):
        def apply(agent):
            version = decisions.refinements_apply(agent, actor=request.user)
            return f"v{version.number} is now current"

        run_per_row(self, request, queryset, apply)

    @admin.action(description="Enable auto-approve")
    def enable_auto_approve(self, request, queryset):
        self._switch(request, queryset, approval.auto_approve_enable, "auto-approval on")

    @admin.action(description="Disable auto-approve")
    def disable_auto_approve(self, request, queryset):
        self._switch(request, queryset, approval.auto_approve_disable, "auto-approval off")

    def _switch(self, request, queryset, service, done):
        def call(agent):
            service(agent, actor=request.user)
            return done

        run_per_row(self, request, queryset, call)

    # --- saving through the services ----------------------------------------------------------
    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        settings_values = {k: data[k] for k in SETTINGS_FIELDS if k in data and k != "name"}
        if change:
            agent = TradingAgent.objects.get(pk=obj.pk)
            values = {k: data[k] for k in form.changed_data if k in SETTINGS_FIELDS}
            if "related_instruments" in form.changed_data:
                values["related_instruments"] = list(data["related_instruments"])
            agent = agent_service.agent_update(agent, actor=request.user, **values)
        else:
            agent = agent_service.agent_create(
                owner=data["owner"], name=data["name"], instrument=data["instrument"],
                strategy_template=data["strategy_template"], params=data.get("params") or {},
                related_instruments=list(data.get("related_instruments") or []), **settings_values,
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
