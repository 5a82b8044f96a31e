"""The numbers of the admin index, each with the link to its filtered list.

A fixed number of queries whatever the size of the lab: one aggregate per table (agents,
iterations, alerts) plus the short "newest" lists and the health report.
"""

import logging
from urllib.parse import urlencode

from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone

from agents.models import ActivityLog, AgentStatus, ContinuousState, IterationStatus, LearningIteration
from agents.selectors import agents_visible_to, owned_rows, sees_everything
from agents.services.continuous import day_bounds
from alerts.models import AgentAlert
from config.observability.health import health_report
from console.readiness import learning_readiness
from graduation.models import GraduationEvent

logger = logging.getLogger(__name__)

NEWEST_ALERTS = 8
RECENT_GRADUATIONS = 6
RECENT_ACTIVITY = 12
SEVERITIES = ("CRITICAL", "WARNING", "INFO")


def changelist(model, **params):
    url = reverse(f"admin:{model}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def _tile(label, value, url, tone=""):
    return {"label": label, "value": value, "url": url, "tone": tone}


def agent_tiles(user):
    agents = agents_visible_to(user)
    counts = agents.aggregate(
        total=Count("pk"),
        **{status: Count("pk", filter=Q(status=status)) for status in AgentStatus.values},
        **{f"loop_{state}": Count("pk", filter=Q(continuous_state=state)) for state in ContinuousState.values},
        continuous=Count("pk", filter=Q(continuous_learning_enabled=True)),
        scheduled=Count("pk", filter=Q(auto_learn_enabled=True)),
        auto_approve=Count("pk", filter=Q(auto_approve_enabled=True)),
    )
    agent_list = "agents_tradingagent"
    statuses = [_tile("all agents", counts["total"], changelist(agent_list))] + [
        _tile(label.lower(), counts[value], changelist(agent_list, status__exact=value),
              "good" if value != AgentStatus.LEARNING and counts[value] else "")
        for value, label in AgentStatus.choices
    ]
    learning = [
        _tile("learning continuously", counts["continuous"],
              changelist(agent_list, continuous_learning_enabled__exact=1)),
        _tile("running now", counts["loop_running"], changelist(agent_list, continuous_state__exact="running")),
        _tile("cooling down", counts["loop_cooling_down"],
              changelist(agent_list, continuous_state__exact="cooling_down")),
        _tile("capped for today", counts["loop_capped"], changelist(agent_list, continuous_state__exact="capped"),
              "warn" if counts["loop_capped"] else ""),
        _tile("converged", counts["loop_converged"], changelist(agent_list, continuous_state__exact="converged")),
        _tile("on a schedule", counts["scheduled"], changelist(agent_list, auto_learn_enabled__exact=1)),
        _tile("auto-approving", counts["auto_approve"], changelist(agent_list, auto_approve_enabled__exact=1)),
    ]
    return statuses, learning


def iteration_tiles(user, now):
    start, end = day_bounds(now)
    today = Q(queued_at__gte=start, queued_at__lt=end)
    counts = owned_rows(LearningIteration.objects.all(), user).aggregate(
        running=Count("pk", filter=Q(status=IterationStatus.RUNNING)),
        queued=Count("pk", filter=Q(status=IterationStatus.QUEUED)),
        today=Count("pk", filter=today),
        succeeded=Count("pk", filter=today & Q(status=IterationStatus.SUCCEEDED)),
        failed=Count("pk", filter=today & Q(status=IterationStatus.FAILED)),
    )
    local = timezone.localtime(now)
    day = {"queued_at__year": local.year, "queued_at__month": local.month, "queued_at__day": local.day}
    iterations = "agents_learningiteration"
    return [
        _tile("running now", counts["running"], changelist(iterations, status__exact="running"),
              "busy" if counts["running"] else ""),
        _tile("queued", counts["queued"], changelist(iterations, status__exact="queued")),
        _tile("today", counts["today"], changelist(iterations, **day)),
        _tile("succeeded today", counts["succeeded"], changelist(iterations, status__exact="succeeded", **day),
              "good" if counts["succeeded"] else ""),
        _tile("failed today", counts["failed"], changelist(iterations, status__exact="failed", **day),
              "bad" if counts["failed"] else ""),
    ]


def alert_panel(user):
    open_alerts = owned_rows(AgentAlert.objects.all(), user).filter(acknowledged=False)
    counts = open_alerts.aggregate(
        total=Count("pk"), **{severity: Count("pk", filter=Q(severity=severity)) for severity in SEVERITIES}
    )
    alerts = "alerts_agentalert"
    tiles = [_tile("unacknowledged", counts["total"], changelist(alerts, acknowledged__exact=0),
                   "warn" if counts["total"] else "")] + [
        _tile(severity.lower(), counts[severity], changelist(alerts, acknowledged__exact=0, severity__exact=severity),
              {"CRITICAL": "bad", "WARNING": "warn"}.get(severity, "") if counts[severity] else "")
        for severity in SEVERITIES
    ]
    newest = list(open_alerts.select_related("agent").order_by("-last_seen_at", "-id")[:NEWEST_ALERTS])
    return {"tiles": tiles, "newest": newest}


def health(user, now):
    """The observability report (beat, workers, broker, database); None when it cannot be read."""
    try:
        # No alerting side effect on a page view: /health and check_health raise the alerts.
        return health_report(public=not sees_everything(user), check_alerts=False, now=now)
    except Exception:
        logger.exception("dashboard: the health report failed")
        return None


def _age(seconds):
    if seconds is None:
        return "never seen"
    if seconds < 120:
        return f"seen {seconds:.0f} s ago"
    if seconds < 7200:
        return f"seen {seconds / 60:.0f} min ago"
    return f"seen {seconds / 3600:.1f} h ago"


def health_rows(report):
    """(part, ok, what to say) for the sidebar; the report's own words, shortened."""
    if report is None:
        return []
    database, broker, beat, workers = (report[p] for p in ("database", "broker", "beat", "workers"))
    rows = [
        ("database", database["ok"], f"{database.get('latency_ms', '-')} ms" if database["ok"]
         else database.get("error", "unreachable")),
        ("broker", broker["ok"], broker.get("transport", "") if broker["ok"] else broker.get("error", "unreachable")),
        ("beat", beat["ok"], _age(beat.get("age_seconds")) if "age_seconds" in beat else beat.get("error", "")),
    ]
    if "alive" in workers:
        alive = workers["alive"]
        said = (f"{alive} alive, {_age(workers.get('age_seconds'))}" if alive
                else workers.get("state", "stale").replace("_", " "))
    else:
        said = workers.get("error", "")
    rows.append(("workers", workers["ok"], said))
    return rows


def dashboard(user, now=None):
    now = now or timezone.now()
    statuses, learning = agent_tiles(user)
    report = health(user, now)
    return {
        "now": now,
        "statuses": statuses,
        "learning": learning,
        "iterations": iteration_tiles(user, now),
        "alerts": alert_panel(user),
        "graduations": list(
            owned_rows(GraduationEvent.objects.all(), user).select_related("agent", "version")
            .order_by("-created_at", "-id")[:RECENT_GRADUATIONS]
        ),
        "graduations_url": changelist("graduation_graduationevent"),
        "activity": list(owned_rows(ActivityLog.objects.all(), user).select_related("agent")
                         .order_by("-created_at", "-id")[:RECENT_ACTIVITY]),
        "activity_url": changelist("agents_activitylog"),
        "health": report,
        "health_rows": health_rows(report),
        "readiness": learning_readiness(user),
    }
