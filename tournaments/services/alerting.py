"""The alerts a new standings snapshot calls for (raised after it is stored, outside its transaction).

- **New leader**: when the leader differs from the previous snapshot's, a MILESTONE (INFO) about
  the new leader, fingerprint `tournament:<id>:leader` (a repeat while that alert is open updates
  it; an unchanged leader raises nothing).
- **Forward below claim**: an entrant with at least MIN_FORWARD_BARS forward bars whose forward
  per-bar Sharpe is significantly below its common-window Sharpe (its claim),

      PSR(SR* = claimed SR) of the forward returns <= LAB_ALERT_SIGNIFICANCE,

  raises PERFORMANCE_DEGRADATION with severity WARNING, fingerprint `tournament:<id>:forward`.
  WARNING on purpose: a CRITICAL degradation demotes the agent (graduation's receiver of
  alert_raised), and a tournament's comparison is not the lab's demotion rule.
"""

from django.conf import settings

from agents.evaluation.statistics import probabilistic_sharpe
from alerts.models import AlertType, Severity
from alerts.services import alert_raise

MIN_FORWARD_BARS = 20


def forward_psr(row):
    """PSR of the entrant's forward returns against its common-window Sharpe, or None (too few bars)."""
    forward = row["forward"]
    if forward["bars"] < MIN_FORWARD_BARS:
        return None
    return probabilistic_sharpe(forward["sharpe"], forward["bars"], forward["skew"], forward["kurtosis"],
                                sr_benchmark=row["window"]["sharpe"])


def standings_alerts(tournament, rows, *, previous_leader_id):
    """Raise the new-leader and forward-degradation alerts; returns the alerts created."""
    created = []
    if rows and rows[0]["agent"].pk != previous_leader_id:
        leader = rows[0]["agent"]
        alert, new = alert_raise(
            leader, alert_type=AlertType.MILESTONE, severity=Severity.INFO,
            message=f"'{leader.name}' leads tournament '{tournament.name}' (per-bar Sharpe {rows[0]['score']:.3f} "
                    f"over {rows[0]['stats'].t} bars).",
            fingerprint=f"tournament:{tournament.pk}:leader",
            details={"tournament": tournament.pk, "previous_leader": str(previous_leader_id or "") or None,
                     "score": rows[0]["score"]},
        )
        if new:
            created.append(alert)
    for row in rows:
        psr = forward_psr(row)
        if psr is None or psr > settings.LAB_ALERT_SIGNIFICANCE:
            continue
        agent = row["agent"]
        alert, new = alert_raise(
            agent, alert_type=AlertType.PERFORMANCE_DEGRADATION, severity=Severity.WARNING,
            message=f"'{agent.name}' in tournament '{tournament.name}': forward per-bar Sharpe "
                    f"{row['forward']['sharpe']:.3f} over {row['forward']['bars']} bars is significantly below its "
                    f"common-window claim {row['window']['sharpe']:.3f} (PSR {psr:.4f} <= "
                    f"{settings.LAB_ALERT_SIGNIFICANCE}).",
            fingerprint=f"tournament:{tournament.pk}:forward",
            details={"tournament": tournament.pk, "forward_sharpe": row["forward"]["sharpe"],
                     "forward_bars": row["forward"]["bars"], "claimed_sharpe": row["window"]["sharpe"], "psr": psr},
        )
        if new:
            created.append(alert)
    return created
