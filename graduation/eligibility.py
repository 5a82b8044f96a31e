"""Is an agent eligible for its next status? Each criterion with required, actual and passed.

learning -> paper_trading (evidence: the learning record, validation metrics)
    ``min_iterations``: succeeded iterations in the agent's lifetime >= it.
    The window: the last ``consistency_window`` succeeded iterations (only those finished after
    the agent's last demotion: a demoted agent earns its way back with new iterations). The window
    must be full (``consistency_window`` criterion), and *each* iteration in it must pass each
    metric criterion; ``actual`` is the worst value in the window and ``failing_iterations`` the
    numbers that failed:
    ``min_win_rate`` (win_rate >=), ``min_sharpe_ratio`` (sharpe >=), ``min_total_return``
    (total_return >=), ``min_signals`` (num_trades >=), ``max_drawdown`` (max_drawdown <=) and,
    when set, ``min_probabilistic_sharpe`` (psr >=). A missing metric fails.

paper_trading -> live_trading (evidence: the open paper account, graduation.paper.metrics)
    ``paper_bars`` >= LAB_PAPER_MIN_BARS bars processed, ``paper_trades`` >= LAB_PAPER_MIN_TRADES
    closed trades, ``max_drawdown`` (paper max drawdown <=), ``min_total_return`` (paper
    total_return >=), ``min_sharpe_ratio`` (paper sharpe >=).

live_trading has no next step: verdict ``final``.
"""

import math

from django.conf import settings
from django.utils import timezone

from agents.models import AgentStatus, IterationStatus, LearningIteration
from graduation.criteria import effective_criteria
from graduation.models import EventKind, GraduationEvent, PaperAccount
from graduation.paper.metrics import account_metrics

NEXT_STATUS = {AgentStatus.LEARNING: AgentStatus.PAPER_TRADING, AgentStatus.PAPER_TRADING: AgentStatus.LIVE_TRADING}
# criterion -> (validation metric, comparison)
LEARNING_METRICS = (
    ("min_win_rate", "win_rate", ">="),
    ("min_sharpe_ratio", "sharpe", ">="),
    ("min_total_return", "total_return", ">="),
    ("min_signals", "num_trades", ">="),
    ("max_drawdown", "max_drawdown", "<="),
    ("min_probabilistic_sharpe", "psr", ">="),
)
PAPER_METRICS = (
    ("max_drawdown", "max_drawdown", "<="),
    ("min_total_return", "total_return", ">="),
    ("min_sharpe_ratio", "sharpe", ">="),
)


def _number(value):
    if isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _passes(actual, op, required):
    return actual is not None and (actual >= required if op == ">=" else actual <= required)


def _row(criterion, required, actual, passed, **extra):
    return {"criterion": criterion, "required": required, "actual": actual, "passed": bool(passed), **extra}


def last_demotion(agent):
    return (
        GraduationEvent.objects.filter(agent=agent, kind=EventKind.DEMOTE)
        .order_by("-created_at", "-id").values_list("created_at", flat=True).first()
    )


def eligibility(agent, *, now=None):
    """{verdict, eligible, status, target_status, criteria: [...], failed: [...], window, criteria_in_force}."""
    criteria = effective_criteria(agent)
    target = NEXT_STATUS.get(agent.status)
    if target == AgentStatus.PAPER_TRADING:
        rows, window = _learning(agent, criteria)
    elif target == AgentStatus.LIVE_TRADING:
        rows, window = _paper(agent, criteria)
    else:
        rows, window = [], {"kind": "none", "iterations": [], "from": None, "to": None}
    failed = [r["criterion"] for r in rows if not r["passed"]]
    verdict = "final" if target is None else ("not_eligible" if failed else "eligible")
    return {
        "agent": str(agent.pk), "status": agent.status, "target_status": target, "verdict": verdict,
        "eligible": verdict == "eligible", "criteria": rows, "failed": failed, "window": window,
        "criteria_in_force": criteria, "evaluated_at": (now or timezone.now()).isoformat(),
    }


def _learning(agent, criteria):
    succeeded = LearningIteration.objects.filter(agent=agent, status=IterationStatus.SUCCEEDED)
    total = succeeded.count()
    rows = [_row("min_iterations", criteria["min_iterations"], total, total >= criteria["min_iterations"])]
    since = last_demotion(agent)
    recent = succeeded.filter(finished_at__gt=since) if since else succeeded
    size = criteria["consistency_window"]
    window_rows = list(
        recent.order_by("-number").values("number", "finished_at", "validation_metrics")[:size]
    )[::-1]
    numbers = [w["number"] for w in window_rows]
    rows.append(_row("consistency_window", size, len(window_rows), len(window_rows) >= size,
                     note="succeeded iterations in the window" + (" since the last demotion" if since else "")))
    for criterion, metric, op in LEARNING_METRICS:
        required = criteria.get(criterion)
        if required is None:
            continue
        values = [_number((w["validation_metrics"] or {}).get(metric)) for w in window_rows]
        failing = [n for n, v in zip(numbers, values, strict=True) if not _passes(v, op, required)]
        known = [v for v in values if v is not None]
        worst = (min(known) if op == ">=" else max(known)) if len(known) == len(values) and known else None
        if worst is not None and criterion == "min_signals":
            worst = int(worst)
        rows.append(_row(criterion, required, worst, bool(window_rows) and not failing, metric=metric,
                         failing_iterations=failing))
    window = {
        "kind": "iterations", "iterations": numbers,
        "from": window_rows[0]["finished_at"].isoformat() if window_rows and window_rows[0]["finished_at"] else None,
        "to": window_rows[-1]["finished_at"].isoformat() if window_rows and window_rows[-1]["finished_at"] else None,
        "since_demotion": since.isoformat() if since else None,
    }
    return rows, window


def _paper(agent, criteria):
    account = (
        PaperAccount.objects.filter(agent=agent, closed_at__isnull=True, live=False)
        .select_related("agent__instrument").first()
    )
    if account is None:
        rows = [_row("paper_account", "an open paper account", None, False)]
        return rows, {"kind": "paper", "iterations": [], "from": None, "to": None, "bars": 0}
    metrics = account_metrics(account)
    rows = [
        _row("paper_bars", settings.LAB_PAPER_MIN_BARS, account.bars_processed,
             account.bars_processed >= settings.LAB_PAPER_MIN_BARS),
        _row("paper_trades", settings.LAB_PAPER_MIN_TRADES, account.closed_trades,
             account.closed_trades >= settings.LAB_PAPER_MIN_TRADES),
    ]
    for criterion, metric, op in PAPER_METRICS:
        required = criteria[criterion]
        actual = _number(metrics.get(metric))
        rows.append(_row(criterion, required, actual, _passes(actual, op, required), metric=f"paper {metric}"))
    window = {
        "kind": "paper", "iterations": [], "account": account.pk, "bars": account.bars_processed,
        "from": account.opened_bar_timestamp.isoformat() if account.opened_bar_timestamp else None,
        "to": account.last_bar_timestamp.isoformat() if account.last_bar_timestamp else None,
        "metrics": metrics,
    }
    return rows, window


def describe_failures(result):
    """'criterion: actual vs required' for each failed criterion, for error messages and logs."""
    parts = []
    for row in result["criteria"]:
        if row["passed"]:
            continue
        actual = row["actual"]
        shown = "missing" if actual is None else (f"{actual:.4g}" if isinstance(actual, float) else str(actual))
        extra = f" (iterations {', '.join(f'#{n}' for n in row['failing_iterations'])})" if row.get(
            "failing_iterations") else ""
        parts.append(f"{row['criterion']}: {shown} vs required {row['required']}{extra}")
    return "; ".join(parts)
