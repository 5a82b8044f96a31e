"""Graduate, demote, re-pin: every change of what an agent trades, and the record of it.

Transitions (each writes a GraduationEvent and an activity-log entry, in one transaction):

- learning -> paper_trading: by a person, or automatically (graduation.reactions, after an iteration,
  when ``agent.auto_graduate`` is on); only when eligible (graduation.eligibility). A paper
  account opens at the agent's initial capital with the current version pinned.
- paper_trading -> live_trading: only by a person holding ``graduation.approve_live_trading``
  (else 403 naming it), with ``confirm`` true and a non-empty ``reason`` (else 400 naming them),
  and only when eligible on the paper record (else 409 listing the failed criteria). Never
  automatic. The paper account closes (its record is the evidence) and a live account opens on
  the simulated broker (graduation.trading.broker) at the initial capital.
- paper_trading | live_trading -> learning (demote): by a person with a reason, or automatically
  (graduation.reactions) when the account's drawdown passes ``max_drawdown`` or a CRITICAL
  PERFORMANCE_DEGRADATION alert arrives while trading. The open account closes.

Re-pin: while trading, the traded version is the champion account's. A version made current since
the pin (a person applies a refinement or rolls back, or auto-approval for a paper agent whose
owner set ``auto_apply_in_paper``) becomes the challenger in a shadow paper account
(graduation.challenger); it is re-pinned (a ``repin`` GraduationEvent with the paired test's
evidence) only when its forward record beats the champion's.
"""

import logging

from django.db import transaction
from django.utils import timezone

from agents.evaluation.exam import exam_record_stored
from agents.models import AgentStatus, ExamPurpose, StrategyVersion, TradingAgent
from agents.services.activity import activity_log, actor_label_for
from core.errors import Conflict, PermissionRefused, ValidationFailed
from graduation import episodes
from graduation.eligibility import NEXT_STATUS, describe_failures, eligibility, evidence_iteration
from graduation.models import LIVE_PERMISSION, AccountRole, EventKind, GraduationEvent, PaperAccount
from graduation.trading import accounts
from graduation.trading.metrics import account_metrics

logger = logging.getLogger(__name__)

TRADING = (AgentStatus.PAPER_TRADING, AgentStatus.LIVE_TRADING)
AUTO_LABEL = "auto-graduation"
MAX_REASON = 2000


def _lock(agent):
    # of=("self",): PostgreSQL refuses FOR UPDATE on the nullable side of the current_version join.
    return (TradingAgent.objects.select_for_update(of=("self",)).select_related("instrument", "current_version")
            .get(pk=agent.pk))


def _label(actor, automatic):
    return AUTO_LABEL if automatic else actor_label_for(actor)


def event_record(agent, kind, from_status, to_status, *, actor, automatic, reason, snapshot, version, previous=None,
                 now=None, label=None):
    event = GraduationEvent.objects.create(
        agent=agent, kind=kind, from_status=from_status, to_status=to_status, automatic=automatic,
        actor=actor if getattr(actor, "pk", None) else None, actor_label=label or _label(actor, automatic),
        reason=reason, metrics_snapshot=snapshot, version=version, previous_version=previous,
        created_at=now or timezone.now(),
    )
    return event


def agent_graduate(agent, *, actor=None, reason="", confirm=False, automatic=False, now=None):
    """Move the agent one step up (learning -> paper, paper -> live). Returns the GraduationEvent."""
    reason = (reason or "").strip()
    target = NEXT_STATUS.get(agent.status)
    if target is None:
        raise Conflict({"status": f"an agent in {agent.status} has no further step"})
    if target == AgentStatus.LIVE_TRADING:
        _check_live_request(actor, reason, confirm, automatic)
    if len(reason) > MAX_REASON:
        raise ValidationFailed({"reason": f"at most {MAX_REASON} characters"})
    # The opening decision reads bars and runs the strategy: done before the transaction.
    traded = _version_to_trade(agent, target)
    snapshot_version = getattr(traded, "pk", None)
    snapshot = accounts.opening_snapshot(agent, traded)
    with transaction.atomic():
        agent = _lock(agent)
        if NEXT_STATUS.get(agent.status) != target:
            raise Conflict({"status": f"the agent is {agent.status} now (changed meanwhile)"})
        if agent.current_version is None:
            raise Conflict({"current_version": "the agent has no version to trade"})
        result = eligibility(agent, now=now)
        if not result["eligible"]:
            raise Conflict({"eligibility": f"not eligible for {target}: {describe_failures(result)}"})
        traded = _version_to_trade(agent, target)
        if traded.pk != snapshot_version:
            snapshot = accounts.opening_snapshot(agent, traded)
        if target == AgentStatus.PAPER_TRADING:
            evidence, _since = evidence_iteration(agent)
            exam_record_stored(iteration=evidence, purpose=ExamPurpose.GRADUATION)
        from_status = agent.status
        now = now or timezone.now()
        if target == AgentStatus.LIVE_TRADING:
            accounts.close_account(agent, "graduated to live trading", now=now, role=AccountRole.CHAMPION)
            # The paired test needs one champion record: a new shadow opens next to the live account.
            accounts.close_account(agent, "the champion moved to live trading", now=now, role=AccountRole.CHALLENGER)
        accounts.open_account(agent, traded, live=target == AgentStatus.LIVE_TRADING, snapshot=snapshot, now=now)
        agent.status = target
        agent.save(update_fields=["status", "updated_at"])
        reason = reason or (f"automatic: eligible ({len(result['criteria'])} criteria passed)" if automatic
                            else f"graduated by {actor_label_for(actor)}")
        event = event_record(agent, EventKind.GRADUATE, from_status, target, actor=actor, automatic=automatic,
                        reason=reason, snapshot=_snapshot(result), version=traded, now=now)
        episodes.episode_end(agent, now=now)
        activity_log(
            agent, event="graduated",
            message=f"{'Automatically graduated' if automatic else 'Graduated'} from {from_status} to {target}, "
            f"trading v{traded.number}: {reason}",
            actor=actor, actor_label=_label(actor, automatic),
            details={"event": event.pk, "from": from_status, "to": target, "version": traded.number,
                     "automatic": automatic, "reason": reason},
        )
    return event


def _version_to_trade(agent, target):
    """To paper: the current version. To live: the version whose paper record is the evidence (the
    champion's; a challenger approved since keeps shadowing and must win its own test)."""
    if target == AgentStatus.LIVE_TRADING:
        account = accounts.open_account_of(agent)
        if account is not None and account.version is not None:
            return account.version
    return agent.current_version


def _check_live_request(actor, reason, confirm, automatic):
    if automatic:
        raise PermissionRefused({"automatic": "moving an agent to live trading is never automatic"})
    if actor is None or not getattr(actor, "has_perm", None) or not actor.has_perm(LIVE_PERMISSION):
        raise PermissionRefused({"permission": f"moving an agent to live trading needs the {LIVE_PERMISSION} "
                                               "permission"})
    errors = {}
    if confirm is not True:
        errors["confirm"] = "must be true: moving an agent to live trading needs an explicit confirmation"
    if not reason:
        errors["reason"] = "required: say why this agent should trade live"
    if errors:
        raise ValidationFailed(errors)


def _snapshot(result):
    """What the decision was based on: the criteria and the window, with metrics."""
    return {"verdict": result["verdict"], "criteria": result["criteria"], "window": result["window"],
            "criteria_in_force": result["criteria_in_force"]}


def agent_demote(agent, *, actor=None, reason="", automatic=False, trigger="manual", details=None, now=None):
    """Move a paper or live agent back to learning; closes its account. Returns the GraduationEvent."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed({"reason": "required: say why the agent goes back to learning"})
    if len(reason) > MAX_REASON:
        raise ValidationFailed({"reason": f"at most {MAX_REASON} characters"})
    with transaction.atomic():
        agent = _lock(agent)
        if agent.status not in TRADING:
            raise Conflict({"status": f"only a paper or live trading agent can be demoted (this one is "
                                      f"{agent.status})"})
        now = now or timezone.now()
        account = accounts.open_account_of(agent)
        snapshot = {"trigger": trigger, **(details or {})}
        if account is not None:
            account.agent = agent
            snapshot["account"] = _account_summary(account)
            snapshot["paper_metrics"] = account_metrics(account)
        accounts.close_account(agent, f"demoted: {reason}", now=now)
        from_status = agent.status
        agent.status = AgentStatus.LEARNING
        agent.save(update_fields=["status", "updated_at"])
        event = event_record(agent, EventKind.DEMOTE, from_status, AgentStatus.LEARNING, actor=actor,
                             automatic=automatic, reason=reason, snapshot=snapshot, version=agent.current_version,
                             now=now)
        episodes.episode_end(agent, now=now)
        activity_log(
            agent, event="demoted",
            message=f"{'Automatically demoted' if automatic else 'Demoted'} from {from_status} to learning: {reason}",
            actor=actor, actor_label=_label(actor, automatic),
            details={"event": event.pk, "from": from_status, "trigger": trigger, "automatic": automatic,
                     "reason": reason},
        )
    return event


def _account_summary(account):
    return {"id": account.pk, "live": account.live, "equity": account.equity,
            "initial_capital": account.initial_capital, "max_drawdown": account.max_drawdown,
            "bars": account.bars_processed, "closed_trades": account.closed_trades}


def repin_record(agent_id, *, version_id, automatic=False, refinement_id=None, actor=None, note="", now=None,
                 evidence=None, takeover_id=None):
    """Move the champion account of a trading agent to ``version_id`` and record it (a REPIN event).

    Called when a challenger wins (graduation.challenger; ``evidence``, the paired test's figures,
    is kept in the event's metrics_snapshot). With ``takeover_id`` (the challenger's shadow paper
    account, which trades ``version_id``) the shadow itself becomes the champion and the old
    champion closes: the paper record the next gate reads is then the new version's own forward
    record, not the old version's bars followed by the new one's. Idempotent: nothing happens when
    the champion already trades ``version_id`` or the agent is not trading. Returns the event or None.
    """
    with transaction.atomic():
        agent = TradingAgent.objects.select_for_update().filter(pk=agent_id).first()
        if agent is None or agent.status not in TRADING:
            return None
        version = StrategyVersion.objects.filter(pk=version_id, agent=agent).first()
        account = accounts.open_account_of(agent)
        if version is None or account is None or account.version_id == version.pk:
            return None
        previous = account.version
        if takeover_id is None:
            PaperAccount.objects.filter(pk=account.pk).update(version=version, revision=account.revision + 1)
        else:
            takeover = PaperAccount.objects.filter(pk=takeover_id, agent=agent, version=version, live=False,
                                                   role=AccountRole.CHALLENGER, closed_at__isnull=True).first()
            if takeover is None:
                return None
            # Closed first: one open account per (agent, role).
            accounts.close_account(agent, f"replaced by its challenger, account {takeover.pk} (v{version.number})",
                                   now=now, role=AccountRole.CHAMPION)
            PaperAccount.objects.filter(pk=takeover.pk).update(role=AccountRole.CHAMPION,
                                                               revision=takeover.revision + 1)
        source = f" from refinement {refinement_id}" if refinement_id else ""
        reason = note or f"v{version.number} made the traded version{source}"
        snapshot = {"refinement": refinement_id, "version_metrics": version.metrics}
        if evidence:
            snapshot["evidence"] = evidence
        label = "champion/challenger" if automatic else actor_label_for(actor)
        event = event_record(agent, EventKind.REPIN, agent.status, agent.status, actor=actor, automatic=automatic,
                             reason=reason, snapshot=snapshot, version=version, previous=previous, now=now,
                             label=label)
        activity_log(
            agent, event="traded_version_repinned",
            message=f"While {agent.status}: the traded version is now v{version.number} "
            f"(was v{previous.number if previous else '-'}): {reason}.",
            actor=actor, actor_label=label,
            details={"event": event.pk, "version": version.number, "previous": previous.number if previous else None,
                     "refinement": refinement_id, "automatic": automatic},
        )
    return event


def version_at(agent, when):
    """{status, version, event} in force at ``when``: the status set by the last transition at or
    before it and the version of the last transition or re-pin at or before it. Before any event
    the agent was learning and its version was the newest one created by then."""
    event = (
        GraduationEvent.objects.filter(agent=agent, created_at__lte=when)
        .select_related("version").order_by("-created_at", "-id").first()
    )
    if event is None or event.to_status == AgentStatus.LEARNING:
        version = (StrategyVersion.objects.filter(agent=agent, created_at__lte=when).order_by("-number").first())
        return {"status": AgentStatus.LEARNING, "version": version, "event": event, "trading": False}
    return {"status": event.to_status, "version": event.version, "event": event, "trading": True}


def history(agent):
    return GraduationEvent.objects.filter(agent=agent).select_related("version", "previous_version", "actor")


SWITCHES = ("auto_graduate", "auto_apply_in_paper")


def switches_set(agent, data, *, actor):
    """Turn ``auto_graduate`` / ``auto_apply_in_paper`` on or off (booleans only, unknown names refused)."""
    if not isinstance(data, dict):
        raise ValidationFailed({"settings": "must be an object"})
    errors = {str(k): f"unknown setting (known: {', '.join(SWITCHES)})" for k in data if k not in SWITCHES}
    errors.update({k: "must be true or false" for k in SWITCHES if k in data and not isinstance(data[k], bool)})
    if errors:
        raise ValidationFailed(errors)
    with transaction.atomic():
        agent = _lock(agent)
        changed = {k: data[k] for k in SWITCHES if k in data and getattr(agent, k) != data[k]}
        if changed:
            for key, value in changed.items():
                setattr(agent, key, value)
            agent.save(update_fields=[*changed, "updated_at"])
            said = ", ".join(f"{k}={'on' if v else 'off'}" for k, v in changed.items())
            activity_log(agent, event="graduation_settings_set", message=f"Graduation settings: {said}.",
                         actor=actor, details=changed)
    return agent
