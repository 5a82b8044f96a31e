"""Is an agent eligible for its next status? Each criterion with required, actual and passed.

The rules and their defaults are declared in graduation.criteria; this module gathers the
evidence they read and judges them with the one rules engine (agents.evaluation.rules).

learning -> paper_trading: the evidence is the latest succeeded iteration that evaluated the
    agent's *current* version (and finished after the agent's last demotion: a demoted agent earns
    its way back with new iterations). Its fold metrics (selection data), its sealed test metrics,
    the version's deflated Sharpe ratio over all the agent's trials, the search's PBO and the
    sealed window's minimum track record length. A version nobody has examined yet (just applied)
    is not eligible until the next iteration has evaluated it. Reading that evidence for a decision
    is recorded as an exam reading (purpose ``graduation``) by the graduation service.
    ``min_iterations`` counts learning effort (succeeded iterations), not evidence.

paper_trading -> live_trading: the open paper account. ``paper_bars`` and ``paper_trades``
    (settings), ``max_drawdown`` and ``min_total_return`` on the paper record, ``min_paper_psr``
    (probabilistic Sharpe ratio of the paper returns against 0) and the minimum track record
    length of the paper Sharpe at ``paper_track_record_confidence``.

live_trading has no next step: verdict ``final``.
"""

import math

from django.conf import settings
from django.utils import timezone

from agents.evaluation import rules as R
from agents.evaluation.statistics import min_track_record_length
from agents.models import AgentStatus, IterationStatus, LearningIteration
from graduation import criteria as C
from graduation.models import AccountRole, EventKind, GraduationEvent, PaperAccount
from graduation.trading.metrics import account_metrics, account_sharpe_stats

NEXT_STATUS = {AgentStatus.LEARNING: AgentStatus.PAPER_TRADING, AgentStatus.PAPER_TRADING: AgentStatus.LIVE_TRADING}
PAPER_RULES = (
    *(R.specialise(rule, evidence="paper") for rule in (C.RULES["max_drawdown"], C.RULES["min_total_return"])),
    C.MIN_PAPER_PSR,
)


def _row(criterion, required, actual, passed, **extra):
    return {"criterion": criterion, "required": required, "actual": actual, "passed": bool(passed), **extra}


def last_demotion(agent):
    return (
        GraduationEvent.objects.filter(agent=agent, kind=EventKind.DEMOTE)
        .order_by("-created_at", "-id").values_list("created_at", flat=True).first()
    )


def eligibility(agent, *, now=None):
    """{verdict, eligible, status, target_status, criteria: [...], failed: [...], window, criteria_in_force}."""
    values = C.effective_criteria(agent)
    target = NEXT_STATUS.get(agent.status)
    if target == AgentStatus.PAPER_TRADING:
        rows, window = _learning(agent, values)
    elif target == AgentStatus.LIVE_TRADING:
        rows, window = _paper(agent, values)
    else:
        rows, window = [], {"kind": "none", "iterations": [], "from": None, "to": None}
    failed = [r["criterion"] for r in rows if not r["passed"]]
    verdict = "final" if target is None else ("not_eligible" if failed else "eligible")
    return {
        "agent": str(agent.pk), "status": agent.status, "target_status": target, "verdict": verdict,
        "eligible": verdict == "eligible", "criteria": rows, "failed": failed, "window": window,
        "criteria_in_force": values, "evaluated_at": (now or timezone.now()).isoformat(),
    }


def evidence_iteration(agent):
    """The latest succeeded iteration that evaluated the current version under the protocol."""
    since = last_demotion(agent)
    qs = LearningIteration.objects.filter(
        agent=agent, status=IterationStatus.SUCCEEDED, version_id=agent.current_version_id,
        selection_score__isnull=False,
    )
    if since:
        qs = qs.filter(finished_at__gt=since)
    return qs.order_by("-number").first(), since


def track_record_row(confidence, stats_sr, skew, kurt, bars, trades, *, where):
    """The minimum track record length row: the evidence must span at least MinTRL bars."""
    need = min_track_record_length(stats_sr, skew, kurt, alpha=1.0 - confidence)
    required = None if math.isinf(need) else math.ceil(need)
    return _row("min_track_record", f">= {required} bars" if required else "a positive Sharpe ratio",
                bars, required is not None and bars >= required, evidence=where, confidence=confidence,
                min_track_record_bars=required, trades=trades)


def _learning(agent, values):
    succeeded = LearningIteration.objects.filter(agent=agent, status=IterationStatus.SUCCEEDED).count()
    iteration, since = evidence_iteration(agent)
    window = {"kind": "iterations", "iterations": [], "from": None, "to": None,
              "since_demotion": since.isoformat() if since else None}
    if iteration is None:
        rows = R.judge(C.LEARNING_RULES[:1], values, R.Evidence(values={"iterations": succeeded}))
        rows.append(_row("evidence", "an iteration that evaluated the current version", None, False,
                         note="the next iteration examines the current version" + (
                             " (since the last demotion)" if since else "")))
        return rows, window
    stats = iteration.evidence or {}
    evidence = R.Evidence(
        folds=iteration.fold_metrics or [], test=iteration.validation_metrics or {},
        selection=iteration.train_metrics or {},
        values={"iterations": succeeded, "dsr": iteration.dsr, "pbo": iteration.pbo},
        min_fold_pass=values["min_fold_pass"],
    )
    rows = R.judge(C.LEARNING_RULES, values, evidence)
    if values.get("track_record_confidence") is not None:
        rows.append(track_record_row(
            values["track_record_confidence"], stats.get("test_sharpe", 0.0), stats.get("test_skew", 0.0),
            stats.get("test_kurtosis", 3.0), stats.get("test_bars", 0), stats.get("test_trades", 0),
            where="test"))
    window.update(
        iterations=[iteration.number], iteration=iteration.number, version=agent.current_version_id,
        windows=iteration.windows, n_trials=iteration.n_trials,
        **{"from": iteration.finished_at.isoformat() if iteration.finished_at else None,
           "to": iteration.finished_at.isoformat() if iteration.finished_at else None},
    )
    return rows, window


def _paper(agent, values):
    account = (
        PaperAccount.objects.filter(agent=agent, role=AccountRole.CHAMPION, closed_at__isnull=True, live=False)
        .select_related("agent__instrument").first()
    )
    if account is None:
        rows = [_row("paper_account", "an open paper account", None, False)]
        return rows, {"kind": "paper", "iterations": [], "from": None, "to": None, "bars": 0}
    metrics = account_metrics(account)
    stats = account_sharpe_stats(account)
    rows = [
        _row("paper_bars", settings.LAB_PAPER_MIN_BARS, account.bars_processed,
             account.bars_processed >= settings.LAB_PAPER_MIN_BARS, evidence="paper"),
        _row("paper_trades", settings.LAB_PAPER_MIN_TRADES, account.closed_trades,
             account.closed_trades >= settings.LAB_PAPER_MIN_TRADES, evidence="paper"),
    ]
    # The paper rules' evidence ("paper") is the account's metrics, read as scalar values.
    rows += R.judge(PAPER_RULES, values, R.Evidence(values=metrics))
    for row in rows[2:]:
        row["metric"] = f"paper {row['criterion']}"
    if values.get("paper_track_record_confidence") is not None:
        rows.append(track_record_row(values["paper_track_record_confidence"], stats.sr, stats.skew, stats.kurt,
                                     stats.t, account.closed_trades, where="paper"))
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
        extra = ""
        if row.get("folds") is not None:
            extra = f" (in {row['folds_passed']} of {row['folds']} folds, needs {row['folds_needed']}"
            extra += f"; sealed test {R.fmt(row.get('test_value'))})" if "test_value" in row else ")"
        elif "test_value" in row:  # selection+test: the selection figure alone may pass
            extra = f" (on the selection data; sealed test {R.fmt(row.get('test_value'))})"
        parts.append(f"{row['criterion']}: {shown} vs required {row['required']}{extra}")
    return "; ".join(parts)
