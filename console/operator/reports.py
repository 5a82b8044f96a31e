"""What ``manage.py lab agents`` and ``lab agent`` print: read-only, scoped like the API."""

from django.db.models import OuterRef, Subquery

from agents.models import IterationStatus, LearningIteration, TradingAgent
from agents.selectors import agents_visible_to, owned_rows
from agents.services import approval, continuous, scheduling
from alerts.models import AgentAlert
from console.operator.table import fmt, render
from graduation.eligibility import eligibility

RECENT_ITERATIONS = 10


def visible(user):
    """The agents the shell user may see; with no user (no --as) the shell reads the whole lab."""
    qs = TradingAgent.objects.all() if user is None else agents_visible_to(user)
    return qs.select_related("owner", "instrument", "current_version")


def _autonomy(agent):
    learn = f"cron {agent.learning_schedule}" if agent.auto_learn_enabled else "off"
    loop = agent.continuous_state if agent.continuous_learning_enabled else "off"
    return learn, loop, "on" if agent.auto_approve_enabled else "off"


def agents_table(user, *, status=None, instrument=None):
    latest = LearningIteration.objects.filter(agent=OuterRef("pk"), status=IterationStatus.SUCCEEDED).order_by(
        "-number")
    qs = visible(user).annotate(score=Subquery(latest.values("score")[:1]),
                                last_number=Subquery(latest.values("number")[:1]))
    if status:
        qs = qs.filter(status=status)
    if instrument:
        qs = qs.filter(instrument__symbol=instrument)
    rows = []
    for agent in qs.order_by("name"):
        learn, loop, approve = _autonomy(agent)
        rows.append((str(agent.pk)[:8], agent.name, agent.owner.username, agent.instrument.symbol,
                     agent.strategy_template, agent.status,
                     f"v{agent.current_version.number}" if agent.current_version else "-",
                     agent.score, learn, loop, approve))
    header = ("id", "name", "owner", "instrument", "template", "status", "version", "score", "auto-learn",
              "continuous", "auto-approve")
    lines = render(header, rows, empty="No agents. Create one with: manage.py create_agent ...")
    if rows:
        lines.append(f"{len(rows)} agent(s); score = out-of-sample score of the newest succeeded iteration.")
    return lines


def agent_page(agent):
    lines = [f"{agent.name}  ({agent.pk})",
             f"  owner {agent.owner.username}, instrument {agent.instrument.symbol}"
             + ("" if agent.instrument.has_intrabar_range else " (close-only)")
             + f", template {agent.strategy_template}, status {agent.status}, "
             f"version v{agent.current_version.number if agent.current_version else '-'}",
             f"  params {agent.current_version.params if agent.current_version else {}}", ""]
    schedule = scheduling.schedule_state(agent)
    loop = continuous.continuous_status(agent)
    settings = approval.approval_settings(agent)
    lines += ["Autonomy", *render(("switch", "state", "detail"), [
        ("auto-learn", "on" if schedule["auto_learn_enabled"] else "off",
         f"{schedule['description']}; next {fmt(schedule['next_scheduled_iteration'])}"),
        ("continuous", loop["state"], f"{loop['iterations_today']}/{loop['max_iterations_per_day']} today, next "
                                      f"{fmt(loop['next_eligible_at'])}" + (f"; {loop['stop_reason']}"
                                                                            if loop["stop_reason"] else "")),
        ("auto-approve", "on" if settings["auto_approve_enabled"] else "off",
         ", ".join(f"{k}={fmt(v)}" for k, v in settings["thresholds"].items())),
    ], max_width=100), ""]
    result = eligibility(agent)
    lines.append(f"Eligibility: {result['verdict'].replace('_', ' ')}"
                 + (f" for {result['target_status']}" if result["target_status"] else ""))
    lines += render(("criterion", "required", "actual", "passed"),
                    [(r["criterion"], r.get("required"), r.get("actual"), r["passed"]) for r in result["criteria"]],
                    empty="  (no further step)")
    lines.append("")
    alerts = AgentAlert.objects.filter(agent=agent, acknowledged=False).order_by("-last_seen_at")
    lines.append(f"Open alerts ({alerts.count()})")
    lines += render(("id", "severity", "type", "seen", "times", "message"),
                    [(a.pk, a.severity, a.alert_type, a.last_seen_at, a.occurrence_count, a.message)
                     for a in alerts[:20]], empty="  (none)", max_width=80)
    lines.append("")
    iterations = LearningIteration.objects.filter(agent=agent).select_related("version").order_by("-number")
    lines.append("Last iterations")
    lines += render(("#", "trigger", "status", "version", "score", "improvement", "refiner", "finished"),
                    [(i.number, i.trigger, i.status, f"v{i.version.number}" if i.version else "-", i.score,
                      i.improvement, i.refiner_used or "-", i.finished_at)
                     for i in iterations[:RECENT_ITERATIONS]], empty="  (none yet)")
    return lines


def alerts_table(user, agent=None, *, include_acknowledged=False):
    qs = AgentAlert.objects.select_related("agent")
    if agent is not None:
        qs = qs.filter(agent=agent)
    elif user is not None:
        qs = owned_rows(qs, user)
    if not include_acknowledged:
        qs = qs.filter(acknowledged=False)
    rows = [(a.pk, a.agent.name if a.agent else "(lab)", a.severity, a.alert_type, a.last_seen_at,
             a.occurrence_count, a.acknowledged, a.message) for a in qs.order_by("-last_seen_at")[:200]]
    return render(("id", "agent", "severity", "type", "seen", "times", "acked", "message"), rows,
                  empty="No open alerts.", max_width=80)
