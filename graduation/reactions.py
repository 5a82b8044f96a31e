"""What graduation does by itself: after an iteration and after a paper tick.

After an alert (graduation.receivers, on alerts' ``alert_raised``, sent after the alert's
transaction committed, whoever raised it):

- a trading agent is demoted when a CRITICAL PERFORMANCE_DEGRADATION alert about it was raised
  (or repeated) since it entered its current status.

After a learning iteration (graduation.receivers, on ``iteration_finished``):

- a learning agent's eligibility is checked after a succeeded iteration; the episode is updated
  (GRADUATION_READY once per episode) and, when ``auto_graduate`` is on and it is eligible, it
  moves to paper trading (never further). Before ``min_iterations`` succeeded iterations only
  their count is read (``could_be_eligible``): the episode ends as the full check would end it.

After a paper tick processed an account (graduation.trading.runner):

- the agent is demoted when the account's drawdown passes ``max_drawdown`` (strictly) or the
  account is ruined (equity 0);
- the degradation check above runs too, so an alert whose receiver failed demotes within one
  paper interval;
- a paper agent's eligibility for live trading updates its episode (an alert, never a move).
"""

import logging

from django.conf import settings

from agents.models import AgentStatus, IterationStatus, LearningIteration, TradingAgent
from alerts.models import AgentAlert, AlertType, Severity
from core.errors import ServiceError
from graduation import episodes, services
from graduation.criteria import effective_criteria
from graduation.eligibility import eligibility
from graduation.models import AccountRole, EventKind, GraduationEvent, PaperAccount

logger = logging.getLogger(__name__)


def _load(agent_id):
    return TradingAgent.objects.select_related("instrument", "current_version").filter(pk=agent_id).first()


def after_alert(agent_id, alert_type, severity):
    """Returns "demoted" when the alert demoted its trading agent, else None."""
    if agent_id is None or alert_type != AlertType.PERFORMANCE_DEGRADATION or severity != Severity.CRITICAL:
        return None
    agent = _load(agent_id)
    if agent is None or agent.status not in services.TRADING:
        return None
    return "demoted" if demote_on_degradation(agent) else None


def after_iteration(agent_id, iteration_id, status):
    """Returns what it did: "graduated", "ready", or None (demotion follows the alert: after_alert)."""
    agent = _load(agent_id)
    if agent is None:
        return None
    if agent.status != AgentStatus.LEARNING or status != IterationStatus.SUCCEEDED:
        return None
    if not could_be_eligible(agent):
        episodes.episode_end(agent)  # what the full check would do: not eligible ends the episode
        return None
    number = LearningIteration.objects.filter(pk=iteration_id).values_list("number", flat=True).first()
    result = eligibility(agent)
    _episode, raised = episodes.episode_observe(agent, result=result, key=f"iteration:{number}")
    if result["eligible"] and agent.auto_graduate:
        try:
            services.agent_graduate(agent, automatic=True,
                              reason=f"automatic: eligible after iteration #{number} (auto_graduate is on)")
            return "graduated"
        except ServiceError as exc:
            logger.info("agent %s: automatic graduation refused: %s", agent.pk, exc)
    return "ready" if raised else None


def could_be_eligible(agent):
    """False when a learning agent cannot be eligible whatever its evidence: fewer succeeded
    iterations than ``min_iterations`` (a rule that is never off), the state of every young agent.
    One count instead of the evidence (the latest iteration's metrics, the last demotion...), as
    after_paper does with the paper bars and trades."""
    succeeded = LearningIteration.objects.filter(agent=agent, status=IterationStatus.SUCCEEDED).count()
    return succeeded >= effective_criteria(agent)["min_iterations"]


def _entered_status_at(agent):
    entered = (
        GraduationEvent.objects.filter(agent=agent, kind=EventKind.GRADUATE, to_status=agent.status)
        .order_by("-created_at", "-id").values_list("created_at", flat=True).first()
    )
    if entered is None:  # status set by other means: the open account's opening is the next best
        entered = PaperAccount.objects.filter(agent=agent, role=AccountRole.CHAMPION, closed_at__isnull=True
                                              ).values_list("opened_at", flat=True).first()
    return entered


def demote_on_degradation(agent):
    """Demote a trading agent with a CRITICAL PERFORMANCE_DEGRADATION alert seen since it entered
    its status (acknowledged or not: acknowledging an alert does not undo what it reported)."""
    since = _entered_status_at(agent)
    if since is None:
        return None
    alert = (
        AgentAlert.objects.filter(agent=agent, alert_type=AlertType.PERFORMANCE_DEGRADATION,
                                  severity=Severity.CRITICAL, last_seen_at__gt=since)
        .order_by("-last_seen_at").first()
    )
    if alert is None:
        return None
    try:
        return services.agent_demote(
            agent, automatic=True, trigger="performance_degradation",
            reason=f"CRITICAL performance degradation: {alert.message}",
            details={"alert": alert.pk, "alert_fingerprint": alert.fingerprint},
        )
    except ServiceError as exc:
        logger.info("agent %s: demotion on degradation refused: %s", agent.pk, exc)
        return None


def after_paper(account, processed=None):
    """Checks after the engine processed ``account`` (its agent loaded); returns what it did."""
    agent = account.agent
    limit = effective_criteria(agent)["max_drawdown"]
    if account.max_drawdown > limit or account.ruined:
        try:
            services.agent_demote(
                agent, automatic=True, trigger="drawdown",
                reason=f"{'live' if account.live else 'paper'} drawdown {account.max_drawdown:.2%} passed "
                       f"max_drawdown {limit:.2%}" + (" (the account is ruined)" if account.ruined else ""),
                details={"max_drawdown": account.max_drawdown, "limit": limit},
            )
            return "demoted"
        except ServiceError as exc:
            logger.info("agent %s: demotion on drawdown refused: %s", agent.pk, exc)
            return None
    if demote_on_degradation(agent):
        return "demoted"
    if agent.status != AgentStatus.PAPER_TRADING or account.live or not (processed and processed.bars):
        return None
    if account.bars_processed < settings.LAB_PAPER_MIN_BARS or account.closed_trades < settings.LAB_PAPER_MIN_TRADES:
        episodes.episode_end(agent)  # cheap: no metrics needed to know it is not eligible
        return None
    result = eligibility(agent)
    _episode, raised = episodes.episode_observe(agent, result=result,
                                                key=f"bar:{account.last_bar_timestamp.isoformat()}")
    return "ready" if raised else None
