"""Champion and challenger on paper: a new version must beat the traded one on the same bars.

While an agent trades (paper or live) its champion account's version, a version made current
since the pin (a refinement applied, a rollback) becomes the challenger: it trades in a shadow
PAPER account (``role="challenger"``, never a broker) opened on the champion's last bar with the
champion's capital, fees and slippage, so both process the same bars from then on. A newer
current version replaces the challenger (the old shadow closes: the test needs one version's
record). The paper tick processes the shadow with the other accounts; after it, the test:

    r_c, r_k   per-bar equity returns of challenger and champion on the bars both have since
               the shadow opened (T returns, the same timestamps)
    z, p       sharpe_difference_test(r_c, r_k): Jobson-Korkie / Memmel, one-sided H1 SR_c > SR_k
    MinTRL     min_track_record_length(SR_c, skew_c, kurt_c, sr_benchmark=SR_k, alpha=level)
    ready      p <= level  and  T >= MinTRL  and  T >= LAB_PAPER_MIN_BARS
               (level = LAB_CHALLENGER_SIGNIFICANCE)

Ready on a paper agent: re-pinned at once (a REPIN event carrying the evidence): the shadow
account becomes the champion and the old champion closes, so the paper record the paper -> live
gate reads is the promoted version's own, never the old version's bars followed by the new one's.
Ready on a live agent: a GRADUATION_READY alert, and nothing switches until a person holding
``graduation.approve_live_trading`` promotes it; then the live account (it trades through its
broker) moves to the challenger's version and the shadow closes "promoted". A person may
dismiss a challenger: that version is not shadowed again. Demotion and the drawdown reactions read the champion only.

The state is recomputed from the stored equity points (two queries) by :func:`challenger_state`,
which the tick, the API and the console share.
"""

import logging
import math

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents.evaluation.statistics import min_track_record_length, sharpe_difference_test, sharpe_stats
from agents.models import AgentStatus, TradingAgent
from agents.services.activity import activity_log, actor_label_for
from alerts.models import AlertType, Severity
from alerts.services import alert_raise
from core.errors import Conflict, PermissionRefused, ValidationFailed
from graduation import services
from graduation.models import LIVE_PERMISSION, AccountRole, PaperAccount, PaperEquityPoint
from graduation.trading import accounts

logger = logging.getLogger(__name__)

DISMISSED = "dismissed"
PROMOTED = "promoted"
LABEL = "champion/challenger"
NONE, COLLECTING, READY = "none", "collecting", "ready"


def _load(agent_id):
    return TradingAgent.objects.select_related("instrument", "current_version").filter(pk=agent_id).first()


def _dismissed(agent, version_id):
    return PaperAccount.objects.filter(agent=agent, role=AccountRole.CHALLENGER, version_id=version_id,
                                       close_reason__startswith=DISMISSED).exists()


def challenger_sync(agent_id, *, now=None):
    """Make the shadow account follow the agent's current version; returns "opened", "replaced",
    "closed" or None (nothing to do). Idempotent; a race (the champion processed a bar meanwhile)
    does nothing and the next tick tries again."""
    agent = _load(agent_id)
    if agent is None or agent.status not in services.TRADING:
        return None
    champion = accounts.open_account_of(agent)
    if champion is None:
        return None
    shadow = accounts.challenger_account_of(agent)
    current = agent.current_version
    if current is None or current.pk == champion.version_id or _dismissed(agent, current.pk):
        if shadow is None:
            return None
        # The current version is the champion's again, or one a person dismissed: nothing to shadow.
        why = "the champion's version" if current is None or current.pk == champion.version_id else "dismissed"
        with transaction.atomic():
            accounts.close_account(agent, f"superseded: the current v{getattr(current, 'number', '-')} is {why}",
                                   now=now, role=AccountRole.CHALLENGER)
        return "closed"
    if shadow is not None and shadow.version_id == current.pk:
        return None
    # The opening decision runs the strategy on the bars: done before the transaction.
    at = champion.last_bar_timestamp
    snapshot = accounts.opening_snapshot(agent, current, at=at) if at is not None else (None, 0.0)
    with transaction.atomic():
        locked = TradingAgent.objects.select_for_update().filter(pk=agent.pk).first()
        fresh = accounts.open_account_of(agent)
        if (locked is None or locked.status not in services.TRADING or locked.current_version_id != current.pk
                or fresh is None or fresh.pk != champion.pk or fresh.last_bar_timestamp != at):
            return None
        now = now or timezone.now()
        if shadow is not None:
            accounts.close_account(agent, f"replaced by v{current.number}", now=now, role=AccountRole.CHALLENGER)
        opened = accounts.open_account(agent, current, live=False, snapshot=snapshot, now=now,
                                       role=AccountRole.CHALLENGER, like=champion)
        activity_log(
            agent, event="challenger_opened", actor_label=LABEL,
            message=f"v{current.number} challenges the traded v{champion.version.number} in shadow paper "
                    f"account {opened.pk}" + (f" (replacing v{shadow.version.number})" if shadow else "") + ".",
            details={"challenger": opened.pk, "champion": champion.pk, "version": current.number,
                     "replaced": shadow.pk if shadow else None},
        )
    return "replaced" if shadow is not None else "opened"


# --- the paired test ------------------------------------------------------------------------------
def paired_returns(champion, shadow):
    """(timestamps, challenger returns, champion returns) on the bars both accounts have since the
    shadow opened: return i is from common bar i to common bar i + 1 (two queries)."""
    since = shadow.opened_bar_timestamp
    if since is None:
        return [], np.empty(0), np.empty(0)

    def points(account):
        return dict(PaperEquityPoint.objects.filter(account=account, timestamp__gte=since)
                    .values_list("timestamp", "equity"))

    ours, theirs = points(shadow), points(champion)
    common = sorted(ours.keys() & theirs.keys())
    if len(common) < 2:
        return common, np.empty(0), np.empty(0)
    return common, _returns([ours[t] for t in common]), _returns([theirs[t] for t in common])


def _returns(equity):
    equity = np.asarray(equity, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(equity[:-1] > 0, equity[1:] / equity[:-1] - 1.0, 0.0)


def _finite(value):
    return value if math.isfinite(value) else None


def challenger_state(agent, *, champion=None, shadow=None):
    """The champion / challenger comparison of ``agent`` now (JSON-ready; MinTRL None when infinite)."""
    champion = champion or accounts.open_account_of(agent)
    shadow = shadow or accounts.challenger_account_of(agent)
    level = settings.LAB_CHALLENGER_SIGNIFICANCE
    state = {"state": NONE, "level": level, "min_bars": settings.LAB_PAPER_MIN_BARS, "live": agent.status ==
             AgentStatus.LIVE_TRADING, "champion": _account_ref(champion), "challenger": _account_ref(shadow),
             "bars": 0, "min_trl": None, "z": 0.0, "p_value": 1.0, "rho": 0.0, "sr_challenger": 0.0,
             "sr_champion": 0.0, "significant": False, "long_enough": False, "needs_person": False,
             "from": None, "to": None, "verdict": "no challenger"}
    if champion is None or shadow is None:
        return state
    stamps, ours, theirs = paired_returns(champion, shadow)
    test = sharpe_difference_test(ours, theirs) if len(ours) else sharpe_difference_test([], [])
    stats = sharpe_stats(ours)
    min_trl = min_track_record_length(stats.sr, stats.skew, stats.kurt, sr_benchmark=test.sr_b, alpha=level)
    significant = test.p_value <= level
    long_enough = test.t >= min_trl and test.t >= settings.LAB_PAPER_MIN_BARS
    ready = significant and long_enough
    state.update(
        state=READY if ready else COLLECTING, bars=test.t, min_trl=_finite(min_trl), z=test.z,
        p_value=test.p_value, rho=test.rho, sr_challenger=test.sr_a, sr_champion=test.sr_b,
        skew_challenger=stats.skew, kurt_challenger=stats.kurt, significant=significant, long_enough=long_enough,
        needs_person=ready and state["live"],
        **{"from": stamps[0].isoformat() if stamps else None, "to": stamps[-1].isoformat() if stamps else None},
    )
    state["verdict"] = _verdict(state)
    return state


def _account_ref(account):
    if account is None:
        return None
    return {"id": account.pk, "version": account.version.number if account.version else None,
            "live": account.live, "equity": account.equity, "initial_capital": account.initial_capital}


def _verdict(state):
    if state["state"] == READY:
        return ("ready: waiting for a person with the live-trading permission" if state["live"]
                else "ready: the challenger beats the champion")
    need = [f"p {state['p_value']:.3g} > level {state['level']:g}"] if not state["significant"] else []
    if not state["long_enough"]:
        trl = "inf" if state["min_trl"] is None else f"{math.ceil(state['min_trl'])}"
        need.append(f"{state['bars']} common bars < max(MinTRL {trl}, {state['min_bars']})")
    return "collecting: " + "; ".join(need)


# --- decisions ------------------------------------------------------------------------------------
def challenger_after_tick(agent_id):
    """After the tick processed the shadow: promote a ready challenger of a paper agent, alert about
    one of a live agent. Returns "promoted", "waiting" or None."""
    agent = _load(agent_id)
    if agent is None or agent.status not in services.TRADING:
        return None
    state = challenger_state(agent)
    if state["state"] != READY:
        return None
    if agent.status == AgentStatus.PAPER_TRADING:
        challenger_promote(agent, automatic=True, state=state)
        return "promoted"
    shadow = state["challenger"]
    alert_raise(agent, alert_type=AlertType.GRADUATION_READY, severity=Severity.INFO,
                fingerprint=f"challenger:{shadow['id']}",
                message=f"Challenger v{shadow['version']} beats the live v{state['champion']['version']} "
                        f"(z {state['z']:.2f}, p {state['p_value']:.3g} over {state['bars']} bars): waiting for a "
                        f"person with {LIVE_PERMISSION} to promote it",
                details={"challenger": _evidence(state)})
    return "waiting"


def _evidence(state):
    keys = ("z", "p_value", "rho", "bars", "sr_challenger", "sr_champion", "min_trl", "level", "from", "to")
    return {**{k: state[k] for k in keys}, "champion_account": state["champion"]["id"],
            "challenger_account": state["challenger"]["id"], "champion_version": state["champion"]["version"],
            "challenger_version": state["challenger"]["version"]}


def challenger_promote(agent, *, actor=None, automatic=False, state=None):
    """Re-pin the champion to the challenger's version when the test is ready; returns the REPIN event.

    A live agent's champion moves only by a person holding the live-trading permission (403)."""
    if agent.status == AgentStatus.LIVE_TRADING and (automatic or actor is None or not actor.has_perm(LIVE_PERMISSION)):
        raise PermissionRefused({"permission": f"promoting the challenger of a live trading agent needs the "
                                               f"{LIVE_PERMISSION} permission"})
    state = state or challenger_state(agent)
    if state["state"] == NONE:
        raise Conflict({"challenger": "the agent has no challenger"})
    if state["state"] != READY:
        raise Conflict({"challenger": f"not ready: {state['verdict']}"})
    evidence = _evidence(state)
    who = "automatically" if automatic else f"by {actor_label_for(actor)}"
    note = (f"challenger v{evidence['challenger_version']} promoted {who}: Sharpe {state['sr_challenger']:.4f} vs "
            f"{state['sr_champion']:.4f} per bar, z {state['z']:.2f}, p {state['p_value']:.3g} <= "
            f"{state['level']:g} over {state['bars']} common bars")
    with transaction.atomic():
        shadow = accounts.challenger_account_of(agent)
        if shadow is None or shadow.pk != evidence["challenger_account"]:
            raise Conflict({"challenger": "the challenger changed meanwhile; look again"})
        # On paper the shadow itself becomes the champion (its record is the new version's own); a
        # live champion trades through its broker, so it moves to the version and the shadow closes.
        live = accounts.open_account_of(agent).live
        event = services.repin_record(agent.pk, version_id=shadow.version_id, automatic=automatic, actor=actor,
                                      note=note, evidence=evidence, takeover_id=None if live else shadow.pk)
        if event is None:
            raise Conflict({"challenger": "the agent is not trading any more, or already trades this version"})
        if live:
            accounts.close_account(agent, f"{PROMOTED}: {note}"[:300], role=AccountRole.CHALLENGER)
    return event


def challenger_dismiss(agent, *, actor, reason=""):
    """Close the shadow without switching; that version is not shadowed again. Returns the account."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed({"reason": "required: say why the challenger is dismissed"})
    if len(reason) > services.MAX_REASON:
        raise ValidationFailed({"reason": f"at most {services.MAX_REASON} characters"})
    with transaction.atomic():
        shadow = accounts.challenger_account_of(agent)
        if shadow is None:
            raise Conflict({"challenger": "the agent has no challenger"})
        label = actor_label_for(actor)
        accounts.close_account(agent, f"{DISMISSED} by {label}: {reason}"[:300], role=AccountRole.CHALLENGER)
        activity_log(agent, event="challenger_dismissed", actor=actor,
                     message=f"Challenger v{shadow.version.number} dismissed: {reason}",
                     details={"challenger": shadow.pk, "version": shadow.version.number, "reason": reason})
    shadow.refresh_from_db()
    return shadow
