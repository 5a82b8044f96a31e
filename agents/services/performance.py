"""An agent's learning record: counts, best and latest scores, and the per-iteration series."""

from django.db.models import Count, Max, Q

from agents.models import IterationStatus, LearningIteration

SERIES_KEYS = ("sharpe", "total_return", "win_rate", "max_drawdown", "num_trades")


def agent_performance(agent, limit=200):
    counts = LearningIteration.objects.filter(agent=agent).aggregate(
        total=Count("id"),
        succeeded=Count("id", filter=Q(status=IterationStatus.SUCCEEDED)),
        failed=Count("id", filter=Q(status=IterationStatus.FAILED)),
        best_score=Max("score", filter=Q(status=IterationStatus.SUCCEEDED)),
    )
    rows = list(
        LearningIteration.objects.filter(agent=agent, status=IterationStatus.SUCCEEDED)
        .order_by("-number")
        .values("number", "score", "improvement", "best_candidate_score", "validation_metrics", "finished_at")[:limit]
    )
    rows.reverse()
    series = [
        {
            "iteration": r["number"],
            "score": r["score"],
            "improvement": r["improvement"],
            "best_candidate_score": r["best_candidate_score"],
            "finished_at": r["finished_at"],
            **{k: (r["validation_metrics"] or {}).get(k) for k in SERIES_KEYS},
        }
        for r in rows
    ]
    version = agent.current_version
    return {
        "agent": str(agent.pk),
        "objective": agent.objective,
        "status": agent.status,
        "current_version": None
        if version is None
        else {"number": version.number, "params": version.params, "metrics": version.metrics},
        "iterations": {k: counts[k] for k in ("total", "succeeded", "failed")},
        "best_score": counts["best_score"],
        "latest_score": series[-1]["score"] if series else None,
        "latest_validation_metrics": rows[-1]["validation_metrics"] if rows else None,
        "series": series,
    }
