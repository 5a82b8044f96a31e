"""What each button of the agent page does: read the POST, call one service, say what happened.

Each function takes (request, agent) and returns (level, message); a refused request raises the
service's ServiceError, which the view (console.controls) shows field by field, as the API
does. Nothing here decides anything the services do not.
"""

from django.contrib import messages
from django.utils import timezone

from agents.models import IterationStatus, IterationTrigger
from agents.services import approval, continuous, decisions, dispatch, learning, manual_approval, scheduling
from agents.services.approval_gate import DEFAULT_THRESHOLDS, describe_rows
from alerts.models import AgentAlert
from alerts.services import alert_acknowledge, alerts_acknowledge
from graduation.challenger import challenger_dismiss, challenger_promote
from graduation.services import agent_demote as demote_service
from graduation.services import agent_graduate as graduate_service


def _when(moment):
    return "-" if moment is None else timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z")


def run_queued(request, agent):
    iteration, created = dispatch.iteration_start(agent, trigger=IterationTrigger.MANUAL, requested_by=request.user)
    if created:
        return messages.SUCCESS, f"Iteration #{iteration.number} queued for a worker."
    return messages.WARNING, f"Iteration #{iteration.number} is already {iteration.status}; nothing new was queued."


def run_inline(request, agent):
    try:
        iteration, _created = learning.iteration_run_now(
            agent, trigger=IterationTrigger.MANUAL, requested_by=request.user
        )
    except dispatch.IterationDeferred as exc:
        return messages.WARNING, f"{exc}: the iteration stays queued and a worker runs it when a slot frees up."
    if iteration.status in (IterationStatus.QUEUED, IterationStatus.RUNNING):
        return messages.WARNING, f"Iteration #{iteration.number} is already {iteration.status} elsewhere."
    if iteration.status == IterationStatus.FAILED:
        return messages.ERROR, f"Iteration #{iteration.number} failed: {iteration.error}"
    best = "-" if iteration.best_candidate_score is None else f"{iteration.best_candidate_score:.4f}"
    return messages.SUCCESS, (
        f"Iteration #{iteration.number} succeeded: {agent.objective} {iteration.score:.4f} on the sealed test window, "
        f"best candidate {best} ({iteration.refiner_used})."
    )


def schedule(request, agent):
    cron = request.POST.get("cron", "").strip()
    zone = request.POST.get("timezone", "").strip() or "UTC"
    if "_enable" in request.POST:
        scheduling.auto_learn_enable(agent, actor=request.user, cron=cron, timezone=zone)
    else:
        scheduling.schedule_set(agent, cron=cron, timezone=zone, actor=request.user)
    described = scheduling.describe_schedule(agent)
    if agent.auto_learn_enabled:
        return messages.SUCCESS, f"Schedule set: {described}; next run {_when(agent.next_scheduled_iteration)}."
    return messages.SUCCESS, f"Schedule set: {described}. Auto-learn is off: turn it on to run it."


def auto_learn_enable(request, agent):
    scheduling.auto_learn_enable(agent, actor=request.user)
    return messages.SUCCESS, (f"Auto-learn on: {scheduling.describe_schedule(agent)}; "
                              f"next run {_when(agent.next_scheduled_iteration)}.")


def auto_learn_disable(request, agent):
    scheduling.auto_learn_disable(agent, actor=request.user)
    return messages.SUCCESS, "Auto-learn off (the schedule is kept)."


def auto_approve_enable(request, agent):
    approval.auto_approve_enable(agent, actor=request.user)
    note = approval.approval_settings(agent)["note"]
    if note:
        return messages.WARNING, f"Auto-approval on, but candidates are only judged: {note}."
    return messages.SUCCESS, "Auto-approval on: the best candidate passing the thresholds is applied."


def auto_approve_disable(request, agent):
    approval.auto_approve_disable(agent, actor=request.user)
    return messages.SUCCESS, "Auto-approval off."


def threshold_value(name, text):
    """A typed threshold from its form text; anything unreadable is passed on for the service to name."""
    if isinstance(DEFAULT_THRESHOLDS[name], bool):
        return text in ("on", "true", "1")
    text = (text or "").strip()
    if text == "" and name == "max_drawdown":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def thresholds_data(post):
    return {name: threshold_value(name, post.get(name, "")) for name in DEFAULT_THRESHOLDS}


def thresholds(request, agent):
    approval.thresholds_set(agent, thresholds_data(request.POST), actor=request.user)
    return messages.SUCCESS, "Approval thresholds saved."


def continuous_start(request, agent):
    continuous.continuous_start(agent, actor=request.user)
    return messages.SUCCESS, f"Continuous learning on ({agent.continuous_state})."


def continuous_stop(request, agent):
    continuous.continuous_stop(agent, actor=request.user, reason=request.POST.get("reason", ""))
    return messages.SUCCESS, "Continuous learning stopped."


def apply_best(request, agent):
    version = decisions.refinements_apply(agent, actor=request.user)
    return messages.SUCCESS, f"v{version.number} is now the current version ({version.note})."


def acknowledge_all(request, agent):
    count = alerts_acknowledge(AgentAlert.objects.filter(agent=agent), user=request.user)
    return messages.SUCCESS, f"{count} alert{'s' if count != 1 else ''} acknowledged."


def graduate(request, agent):
    event = graduate_service(agent, actor=request.user, reason=request.POST.get("reason", ""))
    return messages.SUCCESS, f"Graduated to {event.get_to_status_display().lower()}: {event.reason}"


def demote(request, agent):
    event = demote_service(agent, actor=request.user, reason=request.POST.get("reason", ""))
    return messages.SUCCESS, f"Demoted to learning: {event.reason}"


def challenger_promote_now(request, agent):
    event = challenger_promote(agent, actor=request.user)
    return messages.SUCCESS, f"Re-pinned to v{event.version.number}: {event.reason}"


def challenger_dismiss_now(request, agent):
    account = challenger_dismiss(agent, actor=request.user, reason=request.POST.get("reason", ""))
    return messages.SUCCESS, f"Challenger v{account.version.number} dismissed; the champion keeps trading."


AGENT_ACTIONS = {
    "run-queued": (run_queued, "iterations"),
    "run-inline": (run_inline, "iterations"),
    "schedule": (schedule, "autonomy"),
    "auto-learn-enable": (auto_learn_enable, "autonomy"),
    "auto-learn-disable": (auto_learn_disable, "autonomy"),
    "auto-approve-enable": (auto_approve_enable, "autonomy"),
    "auto-approve-disable": (auto_approve_disable, "autonomy"),
    "thresholds": (thresholds, "autonomy"),
    "continuous-start": (continuous_start, "autonomy"),
    "continuous-stop": (continuous_stop, "autonomy"),
    "apply-best": (apply_best, "refinements"),
    "acknowledge-all": (acknowledge_all, "alerts"),
    "graduate": (graduate, "graduation"),
    "demote": (demote, "graduation"),
    "challenger-promote": (challenger_promote_now, "challenger"),
    "challenger-dismiss": (challenger_dismiss_now, "challenger"),
}
# Forms whose submitted values come back (with the errors) after a refused save.
STASHED_FORMS = {"schedule": ("cron", "timezone"), "thresholds": tuple(DEFAULT_THRESHOLDS)}


def refinement_decision(request, agent, refinement, decision):
    if decision == "approve":
        refinement = manual_approval.refinement_approve_with_evidence(refinement, actor=request.user)
        failed = [r for r in refinement.criteria_results if not r.get("passed")]
        note = (f" It fails {len(failed)} rule(s) of the approval gate: {describe_rows(failed)}." if failed
                else " It passes every rule of the approval gate.")
        return (messages.WARNING if failed else messages.SUCCESS,
                f"Refinement {refinement.pk} approved; apply it to make it the current version.{note}")
    if decision == "reject":
        decisions.refinement_reject(refinement, actor=request.user, reason=request.POST.get("reason", ""))
        return messages.SUCCESS, f"Refinement {refinement.pk} rejected."
    version = decisions.refinements_apply(agent, actor=request.user, refinement=refinement)
    return messages.SUCCESS, f"Refinement {refinement.pk} applied: v{version.number} is now the current version."


REFINEMENT_DECISIONS = ("approve", "reject", "apply")


def rollback(request, agent, version):
    new = decisions.version_rollback(agent, version, actor=request.user)
    return messages.SUCCESS, f"Rolled back to v{version.number}'s parameters as v{new.number}."


def acknowledge(request, agent, alert):
    if alert.acknowledged:
        return messages.INFO, f"Alert {alert.pk} was already acknowledged."
    alert_acknowledge(alert, user=request.user)
    return messages.SUCCESS, f"Alert {alert.pk} acknowledged."
