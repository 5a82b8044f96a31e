"""What each learning agent lacks for paper trading, for the dashboard.

The lab's own criteria decide (graduation.eligibility); nothing is lowered for show. When no
agent has earned paper trading, this is where an operator sees why, agent by agent. Bounded:
the first READINESS_AGENTS learning agents by name, each judged on its stored evidence.
"""

from agents.evaluation.headline import annotate_headline, headline_of
from agents.models import AgentStatus
from agents.selectors import agents_visible_to
from graduation.eligibility import eligibility

READINESS_AGENTS = 12


def learning_readiness(user):
    agents = annotate_headline(
        agents_visible_to(user).filter(status=AgentStatus.LEARNING).select_related("current_version", "instrument"),
        "current_version",
    ).order_by("name")[:READINESS_AGENTS]
    rows = []
    for agent in agents:
        result = eligibility(agent)
        failed = [r for r in result["criteria"] if not r["passed"]]
        rows.append({
            "agent": agent, "eligible": result["eligible"], "headline": headline_of(agent, agent.current_version),
            "lacks": [_lack(r) for r in failed],
        })
    return rows


def _lack(row):
    actual, required = row.get("actual"), row.get("required")
    if row.get("folds") is not None:
        where = f"{row['folds_passed']}/{row['folds']} folds"
        if "test_value" in row:
            where += ", sealed test " + ("n/a" if row["test_value"] is None else f"{row['test_value']:.3g}")
        return f"{row['criterion']} ({where}; needs {required})"
    shown = "none" if actual is None else (f"{actual:.3g}" if isinstance(actual, float) else str(actual))
    return f"{row['criterion']} {shown} (needs {required})"
