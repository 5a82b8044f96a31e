"""The performance monitor: the rules run after each learning iteration commits.

Reached through ``iteration_finished`` (alerts/receivers.py), so a failure here never fails the
iteration; each rule raises through ``alert_raise`` (deduplicated per agent, type, fingerprint).
Thresholds are settings (config/settings/lab.py, with defaults and bounds). Notation: t is the
succeeded iteration just finished, t-1, t-2 the succeeded ones before it; s_i its score
(objective, sealed test window); wr_i, n_i its test win rate and trades;
W = LAB_ALERT_RECENT_WINDOW, N_min = LAB_ALERT_MIN_TRADES, alpha = LAB_ALERT_SIGNIFICANCE.

PERFORMANCE_DEGRADATION (WARNING; CRITICAL, which demotes, for a paper or live agent); no rule
fires on fewer than N_min trades on either side, since a few trades are no evidence:
    win_rate_drop:  (wr_{t-2} - wr_t) / wr_{t-2} > LAB_ALERT_WIN_RATE_DROP  and the pooled
                    two-proportion z-test of wins_i = round(wr_i n_i) gives p <= alpha
    objective_drop: m = mean(s_{t-W} .. s_{t-1}), scale = max(|m|, LAB_ALERT_OBJECTIVE_FLOOR),
                    m - s_t > LAB_ALERT_OBJECTIVE_MARGIN * scale, and for Sharpe also
                    s_t + z_{1-alpha} SE_t < m (SE_t: sharpe_standard_error of the test window,
                    annualised); the floor keeps a relative test near 0 from firing on noise
ERROR: iteration_failed (CRITICAL after LAB_ALERT_ERROR_CRITICAL_AFTER consecutive failures,
    else WARNING; a streak folds into one alert), refiner_fallback (WARNING).
MILESTONE (INFO): iterations:<M> (count of succeeded in LAB_ALERT_MILESTONES, once per agent),
    best_objective (s_t above every earlier score; folds until acknowledged), win_rate:<x>
    (edge-triggered: wr_t >= LAB_ALERT_MILESTONE_WIN_RATE with LAB_ALERT_MILESTONE_MIN_TRADES
    trades, and not so at t-1).
CONVERGENCE comes from ``learning_converged``; GRADUATION_READY from the graduation app.
Cost: bounded whatever the history (one read: the last max(W, 2) succeeded rows, with the count and
best score of all of them as window aggregates).
"""

import logging
import math
from statistics import NormalDist

from django.conf import settings
from django.db.models import Count, Max, Window

from agents.evaluation.numbers import finite_or_none
from agents.evaluation.statistics import proportion_drop_test, sharpe_standard_error
from agents.models import AgentStatus, IterationStatus, LearningIteration, TradingAgent
from alerts.models import AgentAlert, AlertType, Severity
from alerts.services import alert_raise

logger = logging.getLogger(__name__)

TRADING_STATUSES = (AgentStatus.PAPER_TRADING, AgentStatus.LIVE_TRADING)
FINISHED = (IterationStatus.SUCCEEDED, IterationStatus.FAILED)
DEFAULT_OBJECTIVE_FLOOR = 0.1


def objective_floor():
    return float(getattr(settings, "LAB_ALERT_OBJECTIVE_FLOOR", DEFAULT_OBJECTIVE_FLOOR))


def _pct(value):
    return f"{value * 100:.1f}%"


def degradation_severity(agent):
    return Severity.CRITICAL if agent.status in TRADING_STATUSES else Severity.WARNING


# --- the rules as pure functions (documented above; tested directly) ----------------------
def win_rate_drop(wr_then, n_then, wr_now, n_now, threshold, *, min_trades=1, alpha=1.0):
    """(relative drop, p-value) when the drop exceeds threshold and is significant at alpha, else None."""
    wr_then, wr_now, n_then, n_now = map(finite_or_none, (wr_then, wr_now, n_then, n_now))
    if None in (wr_then, wr_now, n_then, n_now) or min(n_then, n_now) < max(min_trades, 1) or wr_then <= 0:
        return None
    drop = (wr_then - wr_now) / wr_then
    if drop <= threshold:
        return None
    p = proportion_drop_test(round(wr_then * n_then), int(n_then), round(wr_now * n_now), int(n_now))
    return (drop, p) if p <= alpha else None


def sharpe_upper_bound(iteration, z):
    """Upper confidence bound of the iteration's annualised sealed-window Sharpe, or None."""
    stats = iteration.evidence or {}
    sr, t = finite_or_none(stats.get("test_sharpe")), finite_or_none(stats.get("test_bars"))
    if sr is None or t is None:
        return None
    se = sharpe_standard_error(sr, int(t), stats.get("test_skew", 0.0) or 0.0, stats.get("test_kurtosis", 3.0) or 3.0)
    return finite_or_none(iteration.score) + z * se * math.sqrt(iteration.agent.instrument.bars_per_year)


def objective_drop(score, recent_scores, margin, floor):
    """(mean, relative shortfall) when score is below the recent mean by more than margin, else None."""
    score = finite_or_none(score)
    recent = [s for s in map(finite_or_none, recent_scores) if s is not None]
    if score is None or not recent or len(recent) < len(recent_scores):
        return None
    mean = sum(recent) / len(recent)
    scale = max(abs(mean), floor)
    shortfall = (mean - score) / scale
    return (mean, shortfall) if shortfall > margin else None


def meets_win_rate_milestone(metrics):
    wr = finite_or_none((metrics or {}).get("win_rate"))
    trades = finite_or_none((metrics or {}).get("num_trades"))
    return (
        wr is not None and trades is not None
        and wr >= settings.LAB_ALERT_MILESTONE_WIN_RATE and trades >= settings.LAB_ALERT_MILESTONE_MIN_TRADES
    )


# --- entry points -------------------------------------------------------------------------
def check_after_iteration(agent_id, iteration_id):
    """Run every rule for a finished iteration; returns the [(alert, created)] it raised."""
    iteration = (
        LearningIteration.objects.select_related("agent")
        .filter(pk=iteration_id, agent_id=agent_id)
        .first()
    )
    if iteration is None:
        logger.info("monitor: iteration %s of agent %s is gone; nothing to check", iteration_id, agent_id)
        return []
    if iteration.status == IterationStatus.FAILED:
        rules = [_rule_iteration_failed]
    elif iteration.status == IterationStatus.SUCCEEDED:
        rules = [_rule_fallback, _rules_on_success]
    else:
        return []
    raised = []
    for rule in rules:
        # One broken rule must not silence the others.
        try:
            raised.extend(rule(iteration))
        except Exception:
            logger.exception("monitor rule %s failed for iteration %s", rule.__name__, iteration_id)
    return raised


def on_converged(agent_id, reason, details=None):
    agent = TradingAgent.objects.filter(pk=agent_id).first()
    if agent is None:
        return None
    return alert_raise(
        agent, alert_type=AlertType.CONVERGENCE, severity=Severity.INFO,
        message=f"Continuous learning stopped, {reason}.",
        fingerprint="converged", details={"reason": reason, **(details or {})},
    )


# --- ERROR --------------------------------------------------------------------------------
def _rule_iteration_failed(iteration):
    agent = iteration.agent
    limit = settings.LAB_ALERT_ERROR_CRITICAL_AFTER
    statuses = list(
        LearningIteration.objects.filter(agent_id=agent.pk, number__lte=iteration.number, status__in=FINISHED)
        .order_by("-number")
        .values_list("status", flat=True)[:limit]
    )
    streak = 0
    for status in statuses:
        if status != IterationStatus.FAILED:
            break
        streak += 1
    # Only `limit` rows are read, so the streak is known up to the limit: "3+" for 3 or more.
    critical = streak >= limit
    suffix = f" ({streak}{'+' if critical else ''} consecutive failures)" if streak > 1 else ""
    return [alert_raise(
        agent, alert_type=AlertType.ERROR, severity=Severity.CRITICAL if critical else Severity.WARNING,
        message=f"Iteration #{iteration.number} failed{suffix}: {iteration.error or 'unknown error'}",
        fingerprint="iteration_failed",
        details={
            "iteration": iteration.number, "iteration_id": iteration.pk, "error": iteration.error,
            "consecutive_failures": streak, "streak_is_lower_bound": critical, "critical_after": limit,
        },
    )]


def _rule_fallback(iteration):
    if not iteration.fallback_reason:
        return []
    agent = iteration.agent
    return [alert_raise(
        agent, alert_type=AlertType.ERROR, severity=Severity.WARNING,
        message=f"Iteration #{iteration.number}: the {agent.refiner} refiner fell back: {iteration.fallback_reason}",
        fingerprint="refiner_fallback",
        details={"iteration": iteration.number, "iteration_id": iteration.pk, "refiner": agent.refiner,
                 "refiner_used": iteration.refiner_used, "fallback_reason": iteration.fallback_reason},
    )]


# --- PERFORMANCE_DEGRADATION and MILESTONE --------------------------------------------------
def _rules_on_success(iteration):
    agent = iteration.agent
    window = settings.LAB_ALERT_RECENT_WINDOW
    succeeded_before = LearningIteration.objects.filter(
        agent_id=agent.pk, status=IterationStatus.SUCCEEDED, number__lt=iteration.number
    )
    # One read: the totals over every succeeded iteration before t ride on the recent rows as
    # window aggregates (computed before the LIMIT), instead of a second query.
    previous = list(
        succeeded_before.order_by("-number")
        .annotate(before_count=Window(Count("pk")), before_best=Window(Max("score")))
        .values("number", "score", "validation_metrics", "before_count", "before_best")[: max(window, 2)]
    )
    totals = ({"count": previous[0]["before_count"], "best": previous[0]["before_best"]} if previous
              else {"count": 0, "best": None})
    raised = []
    for rule in (_degradation, _milestones):
        try:
            raised.extend(rule(iteration, previous, totals))
        except Exception:
            logger.exception("monitor rule %s failed for iteration %s", rule.__name__, iteration.pk)
    return raised


def _degradation(iteration, previous, totals):
    agent = iteration.agent
    severity = degradation_severity(agent)
    metrics = iteration.validation_metrics or {}
    raised = []
    if len(previous) >= 2:
        then = previous[1]
        then_metrics = then["validation_metrics"] or {}
        found = win_rate_drop(
            then_metrics.get("win_rate"), then_metrics.get("num_trades"),
            metrics.get("win_rate"), metrics.get("num_trades"), settings.LAB_ALERT_WIN_RATE_DROP,
            min_trades=settings.LAB_ALERT_MIN_TRADES, alpha=settings.LAB_ALERT_SIGNIFICANCE,
        )
        if found is not None:
            drop, p_value = found
            raised.append(alert_raise(
                agent, alert_type=AlertType.PERFORMANCE_DEGRADATION, severity=severity,
                message=f"Win rate fell from {_pct(then_metrics['win_rate'])} (iteration #{then['number']}) to "
                f"{_pct(metrics['win_rate'])} (#{iteration.number}) on the sealed test window: {_pct(drop)} "
                f"relative, more than {_pct(settings.LAB_ALERT_WIN_RATE_DROP)}, over "
                f"{int(then_metrics['num_trades'])} and {int(metrics['num_trades'])} trades (p = {p_value:.3g}).",
                fingerprint="win_rate_drop",
                details={
                    "rule": "(wr[t-2] - wr[t]) / wr[t-2] > threshold and two-proportion p <= alpha",
                    "p_value": p_value, "alpha": settings.LAB_ALERT_SIGNIFICANCE,
                    "min_trades": settings.LAB_ALERT_MIN_TRADES,
                    "trades_before": then_metrics.get("num_trades"), "trades": metrics.get("num_trades"),
                    "iteration": iteration.number, "from_iteration": then["number"],
                    "win_rate_before": then_metrics["win_rate"], "win_rate": metrics["win_rate"],
                    "relative_drop": drop, "threshold": settings.LAB_ALERT_WIN_RATE_DROP,
                    "agent_status": agent.status, "metrics": metrics,
                },
            ))
    window = settings.LAB_ALERT_RECENT_WINDOW
    trades = finite_or_none(metrics.get("num_trades")) or 0
    if len(previous) >= window and trades >= settings.LAB_ALERT_MIN_TRADES:
        recent = previous[:window]
        found = objective_drop(
            iteration.score, [row["score"] for row in recent], settings.LAB_ALERT_OBJECTIVE_MARGIN, objective_floor()
        )
        upper = None
        if found is not None and agent.objective == "sharpe":
            upper = sharpe_upper_bound(iteration, NormalDist().inv_cdf(1 - settings.LAB_ALERT_SIGNIFICANCE))
            if upper is None or upper >= found[0]:
                found = None  # within the noise of a Sharpe estimated on this many bars
        if found is not None:
            mean, shortfall = found
            raised.append(alert_raise(
                agent, alert_type=AlertType.PERFORMANCE_DEGRADATION, severity=severity,
                message=f"Objective ({agent.objective}) {iteration.score:.4f} at iteration #{iteration.number} is "
                f"{_pct(shortfall)} below its recent average {mean:.4f} (previous {window} iterations; "
                f"margin {_pct(settings.LAB_ALERT_OBJECTIVE_MARGIN)}).",
                fingerprint="objective_drop",
                details={
                    "rule": "(mean(s[t-W..t-1]) - s[t]) / max(|mean|, floor) > margin",
                    "iteration": iteration.number, "objective": agent.objective, "score": iteration.score,
                    "recent_average": mean, "recent_iterations": [row["number"] for row in recent],
                    "relative_shortfall": shortfall, "margin": settings.LAB_ALERT_OBJECTIVE_MARGIN,
                    "upper_confidence_bound": upper, "alpha": settings.LAB_ALERT_SIGNIFICANCE, "trades": trades,
                    "floor": objective_floor(), "agent_status": agent.status, "metrics": metrics,
                },
            ))
    return raised


def _milestones(iteration, previous, totals):
    agent = iteration.agent
    metrics = iteration.validation_metrics or {}
    raised = []

    count = totals["count"] + 1
    if count in settings.LAB_ALERT_MILESTONES:
        fingerprint = f"iterations:{count}"
        # Once per agent and milestone: a re-run of the monitor after acknowledgement stays quiet.
        if not AgentAlert.objects.filter(agent=agent, alert_type=AlertType.MILESTONE, fingerprint=fingerprint).exists():
            raised.append(alert_raise(
                agent, alert_type=AlertType.MILESTONE, severity=Severity.INFO,
                message=f"{count} successful learning iterations (iteration #{iteration.number}).",
                fingerprint=fingerprint,
                details={"milestone": count, "iteration": iteration.number, "score": iteration.score},
            ))

    best_before, score = finite_or_none(totals["best"]), finite_or_none(iteration.score)
    if best_before is not None and score is not None and score > best_before:
        raised.append(alert_raise(
            agent, alert_type=AlertType.MILESTONE, severity=Severity.INFO,
            message=f"New best sealed-test {agent.objective}: {score:.4f} at iteration #{iteration.number} "
            f"(previous best {best_before:.4f}).",
            fingerprint="best_objective",
            details={"iteration": iteration.number, "objective": agent.objective, "score": score,
                     "previous_best": best_before, "metrics": metrics},
        ))

    before = previous[0]["validation_metrics"] if previous else None
    if meets_win_rate_milestone(metrics) and not (previous and meets_win_rate_milestone(before)):
        level = settings.LAB_ALERT_MILESTONE_WIN_RATE
        raised.append(alert_raise(
            agent, alert_type=AlertType.MILESTONE, severity=Severity.INFO,
            message=f"Win rate {_pct(metrics['win_rate'])} over {int(metrics['num_trades'])} trades at iteration "
            f"#{iteration.number} (at least {_pct(level)} with {settings.LAB_ALERT_MILESTONE_MIN_TRADES}+ trades).",
            fingerprint=f"win_rate:{level:g}",
            details={"iteration": iteration.number, "win_rate": metrics["win_rate"],
                     "num_trades": metrics["num_trades"], "threshold": level,
                     "min_trades": settings.LAB_ALERT_MILESTONE_MIN_TRADES},
        ))
    return raised


__all__ = ["check_after_iteration", "on_converged"]
