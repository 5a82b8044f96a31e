"""What the agent page shows, read through the services; the template only lays it out."""

from agents.evaluation.numbers import finite_or_none
from agents.evaluation.rules import describe
from agents.models import LearningIteration, Refinement, RefinementStatus, StrategyVersion
from agents.selectors import agents_visible_to
from agents.services import approval, continuous, scheduling
from agents.services.performance import agent_performance
from agents.strategies import ensemble
from agents.strategies.registry import get_template
from alerts.models import AgentAlert
from console import curves
from console.charts import format_value
from graduation.challenger import challenger_state
from graduation.eligibility import eligibility
from graduation.models import LIVE_PERMISSION, GraduationEvent
from graduation.trading.accounts import challenger_account_of, open_account_of
from graduation.trading.summary import paper_summary

RECENT_ITERATIONS = 8
OPEN_REFINEMENTS = 12
EXPANDED_REFINEMENTS = 3
DECIDED_REFINEMENTS = 6
RECENT_VERSIONS = 10
OPEN_ALERTS = 10
RECENT_EVENTS = 6
STASH_KEY = "lab_console:{agent_id}"

# (metric, label, format, higher is better)
EVIDENCE_METRICS = (
    ("sharpe", "Sharpe", "number", True),
    ("total_return", "total return", "percent", True),
    ("win_rate", "win rate", "percent", True),
    ("max_drawdown", "max drawdown", "percent", False),
    ("num_trades", "trades", "int", True),
    ("profit_factor", "profit factor", "number", True),
)
THRESHOLD_HELP = {
    "min_win_rate": "0 to 1 (0.4 = 40%)",
    "min_sharpe_ratio": "-10 to 10",
    "min_signals": "trades, a whole number",
    "min_total_return": ">= -1 (0.05 = 5%)",
    "require_improvement": "beat the current version's selection score",
    "min_dsr": "0 to 1: deflated Sharpe over all trials",
    "max_improvement_p": "(0, 1]: p-value of beating the current version",
    "max_test_shortfall": "objective units on the sealed test window",
    "min_fold_pass": "folds, a whole number",
    "max_drawdown": "0 to 1, blank = no limit",
}


def pop_stash(request, agent):
    """The submitted values and errors of a console form that failed (kept across the redirect)."""
    return request.session.pop(STASH_KEY.format(agent_id=agent.pk), None) or {}


def show(value, kind="number"):
    """A criterion's required or actual value as text (strings such as '> current score 0.5' pass)."""
    if value is None:
        return "missing"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return format_value(value, "int" if isinstance(value, int) and kind == "number" else kind)
    return str(value)


SUMMARY_METRICS = (
    ("total_return", "return", "percent"),
    ("buy_hold_return", "buy and hold", "percent"),
    ("sharpe", "Sharpe", "number"),
    ("max_drawdown", "max drawdown", "percent"),
    ("win_rate", "win rate", "percent"),
    ("num_trades", "trades", "int"),
)


def metric_summary(metrics):
    """The headline metrics as (label, text) pairs."""
    metrics = metrics or {}
    return [(label, show(finite_or_none(metrics.get(key)), kind)) for key, label, kind in SUMMARY_METRICS]


def param_text(value):
    if isinstance(value, list):  # an ensemble's frozen members: the members panel shows their params
        return "[" + "; ".join(f"{m.get('template')} of {str(m.get('agent'))[:8]}" if isinstance(m, dict)
                               else param_text(m) for m in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def criteria_rows(rows):
    """Gate rows (agents.evaluation.rules: approval, graduation) with their values and evidence as text."""
    return [{**row, "required_text": show(row.get("required")), "actual_text": show(row.get("actual")),
             "evidence_text": _evidence_text(row), "line": describe(row)} for row in rows]


def _evidence_text(row):
    if row.get("folds") is not None:
        text = f"{row['folds_passed']}/{row['folds']} folds (needs {row['folds_needed']})"
        if "test_value" in row:
            text += f"; sealed test {show(row['test_value'])}"
        return text
    return {"test": "sealed test window", "paper": "paper record", "value": "statistic"}.get(row.get("evidence"), "")


def evidence(refinement):
    """Candidate vs the version it was measured against: selection metrics (in-sample, labelled so),
    the sealed test score when a gate read it, the statistics, and the gate's rows."""
    iteration = refinement.iteration
    current_metrics = iteration.train_metrics or {}
    candidate_metrics = refinement.train_metrics or {}
    current_selection = iteration.selection_score if iteration.selection_score is not None else iteration.score
    rows = [
        {"label": "selection score (in-sample)", "candidate": show(refinement.score),
         "current": show(current_selection),
         "better": _better(refinement.score, current_selection, True)},
        {"label": "sealed test score (out of sample)",
         "candidate": show(refinement.test_score) if refinement.test_score is not None else "not read",
         "current": show(iteration.score), "better": _better(refinement.test_score, iteration.score, True)},
        {"label": "deflated Sharpe ratio", "candidate": show(refinement.dsr), "current": show(iteration.dsr),
         "better": None},
        {"label": "p (beats the current version)", "candidate": show(refinement.improvement_p), "current": "",
         "better": None},
    ]
    for key, label, fmt, higher in EVIDENCE_METRICS:
        candidate, current = finite_or_none(candidate_metrics.get(key)), finite_or_none(current_metrics.get(key))
        rows.append({"label": f"{label} (in-sample)", "candidate": show(candidate, fmt), "current": show(current, fmt),
                     "better": _better(candidate, current, higher)})
    # Judged by the gate while the iteration ran (rows before the protocol have none).
    criteria, judged = refinement.criteria_results or [], bool(refinement.criteria_results)
    base = (iteration.version.params if iteration.version else None) or {}
    changes = [
        {"name": name, "before": param_text(base.get(name)), "after": param_text(value),
         "changed": base.get(name) != value}
        for name, value in sorted((refinement.proposed_params or {}).items())
    ]
    passed = sum(1 for c in criteria if c["passed"])
    return {"metrics": rows, "criteria": criteria_rows(criteria), "judged": judged,
            "passes": passed == len(criteria), "passed": passed, "params": changes}


def _better(candidate, current, higher):
    if candidate is None or current is None or candidate == current:
        return None
    return (candidate > current) == higher


def refinements(agent):
    base = Refinement.objects.filter(agent=agent).select_related("iteration__version", "produced_version",
                                                                 "decided_by")
    open_statuses = (RefinementStatus.PENDING, RefinementStatus.APPROVED)
    open_rows = list(base.filter(status__in=open_statuses).order_by("status", "-score", "id")[:OPEN_REFINEMENTS])
    decided = list(base.exclude(status__in=open_statuses).order_by("-decided_at", "-id")[:DECIDED_REFINEMENTS])
    counts = {
        "pending": base.filter(status=RefinementStatus.PENDING).count(),
        "approved": base.filter(status=RefinementStatus.APPROVED).count(),
    }
    return {
        "open": [{"refinement": r, "evidence": evidence(r), "expanded": i < EXPANDED_REFINEMENTS}
                 for i, r in enumerate(open_rows)],
        "decided": decided,
        "counts": counts,
    }


def versions(agent):
    rows = list(StrategyVersion.objects.filter(agent=agent).select_related("created_by")
                .order_by("-number")[:RECENT_VERSIONS])
    return [{"version": v, "current": v.pk == agent.current_version_id,
             "params": ", ".join(f"{k}={param_text(p)}" for k, p in sorted((v.params or {}).items()))}
            for v in rows]


def ensemble_members(agent, user):
    """An ensemble's members as its current version froze them, each with whether the member agent
    still trades that version (a newer one is the next iteration's candidate); None for other agents."""
    if agent.strategy_template != ensemble.KEY or agent.current_version is None:
        return None
    frozen = agent.current_version.params.get("members", [])
    found = {str(a.pk): a for a in agents_visible_to(user).filter(pk__in=[m["agent"] for m in frozen])
             .select_related("current_version")}
    rows = []
    for member in frozen:
        live = found.get(member["agent"])
        if live is None:
            state = "deleted or not visible"
        elif live.current_version and get_template(live.strategy_template).validate(
                live.current_version.params) == member["params"]:
            state = f"up to date (v{live.current_version.number})"
        else:
            state = "member has a newer version"
        rows.append({"agent": live, "id": member["agent"], "template": member["template"], "state": state,
                     "params": ", ".join(f"{k}={param_text(p)}" for k, p in sorted(member["params"].items()))})
    return rows


def autonomy(agent, stash):
    settings = approval.approval_settings(agent)
    submitted = stash.get("data", {}) if stash.get("form") == "thresholds" else {}
    errors = stash.get("errors", {}) if stash.get("form") == "thresholds" else {}
    rows = []
    for name, default in settings["defaults"].items():
        value = submitted.get(name, settings["thresholds"][name])
        rows.append({"name": name, "value": "" if value is None else value, "default": default,
                     "help": THRESHOLD_HELP.get(name, ""), "error": errors.get(name),
                     "boolean": isinstance(default, bool)})
    schedule_form = stash.get("data", {}) if stash.get("form") == "schedule" else {}
    loop = continuous.continuous_status(agent)
    return {
        "schedule": scheduling.schedule_state(agent),
        "schedule_form": {
            "cron": schedule_form.get("cron", agent.learning_schedule),
            "timezone": schedule_form.get("timezone", agent.schedule_timezone),
            "errors": stash.get("errors", {}) if stash.get("form") == "schedule" else {},
        },
        "approval": settings,
        "threshold_rows": rows,
        "threshold_errors": {k: v for k, v in errors.items() if k not in settings["defaults"]},
        "continuous": loop,
        "continuous_label": loop["state"].replace("_", " "),
        "approval_note": settings["note"].removeprefix("auto-approval skipped: "),
    }


def alerts(agent):
    open_alerts = AgentAlert.objects.filter(agent=agent, acknowledged=False)
    return {"open": list(open_alerts.order_by("-last_seen_at", "-id")[:OPEN_ALERTS]), "count": open_alerts.count()}


def graduation(agent, user):
    paper = paper_summary(agent, points=500, fills=10)
    account = paper["account"]
    result = eligibility(agent)
    return {
        "eligibility": result,
        "criteria": criteria_rows(result["criteria"]),
        "verdict": result["verdict"].replace("_", " "),
        "events": list(GraduationEvent.objects.filter(agent=agent).select_related("version")
                       .order_by("-created_at", "-id")[:RECENT_EVENTS]),
        "paper": paper,
        "paper_svg": curves.paper_equity(account, paper["equity"]) if account else None,
        "paper_metrics": metric_summary(paper["metrics"]) if account else [],
        "can_go_live": user.has_perm(LIVE_PERMISSION),
        "live_permission": LIVE_PERMISSION,
    }


def champion_challenger(agent, user):
    """The A/B panel: the paired test's state (graduation.challenger) and the two curves."""
    champion, shadow = open_account_of(agent), challenger_account_of(agent)
    state = challenger_state(agent, champion=champion, shadow=shadow)
    trl = state["min_trl"]
    return {
        "state": state,
        "shown": shadow is not None or agent.status in ("paper_trading", "live_trading"),
        "svg": curves.champion_challenger_equity(champion, shadow),
        "facts": [("T (common bars)", str(state["bars"])),
                  ("MinTRL", "inf" if trl is None else f"{trl:.0f}"), ("min bars", str(state["min_bars"])),
                  ("z", f"{state['z']:.2f}"), ("p", f"{state['p_value']:.3g}"), ("level", f"{state['level']:g}"),
                  ("rho", f"{state['rho']:.2f}"), ("Sharpe challenger", f"{state['sr_challenger']:.4f}"),
                  ("Sharpe champion", f"{state['sr_champion']:.4f}")],
        "can_promote_live": user.has_perm(LIVE_PERMISSION),
        "live_permission": LIVE_PERMISSION,
    }


def agent_page(agent, request):
    """The context of the agent page's console (everything above Django's form)."""
    stash = pop_stash(request, agent)
    performance = agent_performance(agent, limit=200)
    recent = list(LearningIteration.objects.filter(agent=agent).order_by("-number")[:RECENT_ITERATIONS])
    equity = curves.validation_equity(agent)
    return {
        "agent": agent,
        "performance": performance,
        "iterations": [{"it": it, "improvement": show(it.improvement, "percent") if it.improvement is not None
                        else "-"} for it in recent],
        "equity": equity,
        "equity_metrics": metric_summary(equity.get("metrics")),
        "record": curves.learning_record(performance),
        "autonomy": autonomy(agent, stash),
        "refinements": refinements(agent),
        "versions": versions(agent),
        "members": ensemble_members(agent, request.user),
        "alerts": alerts(agent),
        "graduation": graduation(agent, request.user),
        "challenger": champion_challenger(agent, request.user),
        "stash": stash,
    }
