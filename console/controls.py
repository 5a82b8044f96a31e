"""The agent page's control views, mixed into the TradingAgent admin (its get_urls).

Every control is a POST to ``/admin/agents/tradingagent/<id>/console/...``: wrapped by
``admin_site.admin_view`` (staff login and CSRF), scoped to the agents the admin shows the user
(another owner's agent is a 404) and needing the change permission on it (else 403). It calls
one service (console.actions) and redirects back to the agent page with the success or
the service's error messages, one per field as the API names them ("cron: field 2 (hour) '25' is
out of range 0-23"). A refused form keeps what was typed until the page shows it once.

Going live has its own page, ``<id>/console/go-live/``: GET shows the paper record's eligibility
and a form (reason, confirmation); POST calls graduation.services.agent_graduate(..., confirm=...).
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_GET, require_POST

from agents.models import AgentStatus, Refinement, StrategyVersion
from agents.services import continuous
from alerts.models import AgentAlert
from console import actions
from console.panels import STASH_KEY, criteria_rows
from core.errors import ServiceError
from graduation.eligibility import eligibility
from graduation.models import LIVE_PERMISSION
from graduation.services import agent_graduate


def error_messages(exc):
    """One line per field, as the API's body names them."""
    return [f"{field}: {rule}" for field, rule in exc.errors.items()]


class ConsoleControlsMixin:
    """For TradingAgentAdmin: the console's URLs and views."""

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}"

        def wrap(view):
            return self.admin_site.admin_view(view)

        console = [
            path("<str:object_id>/console/status/", wrap(self.console_status_view), name=f"{name}_console_status"),
            path("<str:object_id>/console/go-live/", wrap(self.go_live_view), name=f"{name}_go_live"),
            path("<str:object_id>/console/refinements/<int:refinement_id>/<slug:decision>/",
                 wrap(self.refinement_view), name=f"{name}_refinement"),
            path("<str:object_id>/console/versions/<int:version_id>/rollback/", wrap(self.rollback_view),
                 name=f"{name}_rollback"),
            path("<str:object_id>/console/alerts/<int:alert_id>/acknowledge/", wrap(self.acknowledge_view),
                 name=f"{name}_acknowledge"),
            path("<str:object_id>/console/<slug:control>/", wrap(self.control_view), name=f"{name}_control"),
        ]
        return console + super().get_urls()

    # --- helpers ----------------------------------------------------------------------------
    def console_agent(self, request, object_id, *, change=True):
        """The agent if this user may see it (else 404) and, for a control, change it (else 403)."""
        agent = self.get_object(request, object_id)
        if agent is None:
            raise Http404("No such agent.")
        allowed = self.has_change_permission(request, agent) if change else self.has_view_permission(request, agent)
        if not allowed:
            raise PermissionDenied
        return agent

    def agent_url(self, agent, anchor=""):
        url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[agent.pk])
        return f"{url}#{anchor}" if anchor else url

    def perform(self, request, agent, call, anchor, form=None):
        try:
            level, message = call()
        except ServiceError as exc:
            for line in error_messages(exc):
                messages.error(request, line)
            if form is not None:
                fields = actions.STASHED_FORMS[form]
                request.session[STASH_KEY.format(agent_id=agent.pk)] = {
                    "form": form,
                    # An unticked checkbox is absent from the POST: "" keeps it unticked.
                    "data": {k: request.POST.get(k, "") for k in fields},
                    "errors": dict(exc.errors),
                }
        else:
            messages.add_message(request, level, message)
        return HttpResponseRedirect(self.agent_url(agent, anchor))

    # --- views ------------------------------------------------------------------------------
    def control_view(self, request, object_id, control):
        if control not in actions.AGENT_ACTIONS:
            raise Http404("No such control.")
        return require_POST(self._control)(request, object_id, control)

    def _control(self, request, object_id, control):
        agent = self.console_agent(request, object_id)
        function, anchor = actions.AGENT_ACTIONS[control]
        form = control if control in actions.STASHED_FORMS else None
        return self.perform(request, agent, lambda: function(request, agent), anchor, form)

    def refinement_view(self, request, object_id, refinement_id, decision):
        if decision not in actions.REFINEMENT_DECISIONS:
            raise Http404("No such decision.")
        return require_POST(self._refinement)(request, object_id, refinement_id, decision)

    def _refinement(self, request, object_id, refinement_id, decision):
        agent = self.console_agent(request, object_id)
        refinement = get_object_or_404(Refinement.objects.select_related("agent"), pk=refinement_id, agent=agent)
        return self.perform(request, agent, lambda: actions.refinement_decision(request, agent, refinement, decision),
                            "refinements")

    def rollback_view(self, request, object_id, version_id):
        return require_POST(self._rollback)(request, object_id, version_id)

    def _rollback(self, request, object_id, version_id):
        agent = self.console_agent(request, object_id)
        version = get_object_or_404(StrategyVersion, pk=version_id, agent=agent)
        return self.perform(request, agent, lambda: actions.rollback(request, agent, version), "versions")

    def acknowledge_view(self, request, object_id, alert_id):
        return require_POST(self._acknowledge)(request, object_id, alert_id)

    def _acknowledge(self, request, object_id, alert_id):
        agent = self.console_agent(request, object_id)
        alert = get_object_or_404(AgentAlert.objects.select_related("agent"), pk=alert_id, agent=agent)
        return self.perform(request, agent, lambda: actions.acknowledge(request, agent, alert), "alerts")

    def console_status_view(self, request, object_id):
        return require_GET(self._status)(request, object_id)

    def _status(self, request, object_id):
        """What the agent page polls while an iteration is active: the loop and the iterations."""
        agent = self.console_agent(request, object_id, change=False)
        status = continuous.continuous_status(agent)
        latest = agent.iterations.order_by("-number").values("number", "status", "score").first()
        active = status["active_iteration"]
        return JsonResponse({
            "state": status["state"],
            "iterations_today": status["iterations_today"],
            "max_iterations_per_day": status["max_iterations_per_day"],
            "next_eligible_at": status["next_eligible_at"],
            "active": {"number": active["number"], "status": active["status"]} if active else None,
            "latest": latest,
        })

    def go_live_view(self, request, object_id):
        agent = self.console_agent(request, object_id)
        if agent.status != AgentStatus.PAPER_TRADING:
            messages.error(request, f"status: only a paper trading agent can go live (this one is {agent.status})")
            return HttpResponseRedirect(self.agent_url(agent, "graduation"))
        errors, status = {}, 200
        form = {"reason": "", "confirm": False}
        if request.method == "POST":
            form = {"reason": request.POST.get("reason", ""), "confirm": request.POST.get("confirm") == "on"}
            try:
                event = agent_graduate(agent, actor=request.user, reason=form["reason"], confirm=form["confirm"])
            except ServiceError as exc:
                errors, status = dict(exc.errors), exc.status_code
                for line in error_messages(exc):
                    messages.error(request, line)
            else:
                messages.success(request, f"{agent.name} is live trading v{event.version.number}: {event.reason}")
                return HttpResponseRedirect(self.agent_url(agent, "graduation"))
        elif request.method != "GET":
            return HttpResponseNotAllowed(["GET", "POST"])
        allowed = request.user.has_perm(LIVE_PERMISSION)
        if not allowed:
            status = 403
            errors.setdefault("permission", f"moving an agent to live trading needs the {LIVE_PERMISSION} permission")
        result = eligibility(agent)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Move {agent.name} to live trading",
            "opts": self.opts,
            "original": agent,
            "agent": agent,
            "agent_url": self.agent_url(agent, "graduation"),
            "eligibility": result,
            "criteria": criteria_rows(result["criteria"]),
            "verdict": result["verdict"].replace("_", " "),
            "form": form,
            "errors": errors,
            "allowed": allowed,
            "live_permission": LIVE_PERMISSION,
        }
        return TemplateResponse(request, "admin/lab_console/go_live.html", context, status=status)
