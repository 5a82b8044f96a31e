"""Eligibility episodes: GRADUATION_READY once per episode, not on every check.

An episode is a run of consecutive checks (after each succeeded iteration for a learning agent,
after each paper tick with new bars for a paper agent) that found the agent eligible for its next
status. It begins at the first such check, keyed by where it began (``iteration:<number>`` or
``bar:<timestamp>``), and ends at the first check that does not find it eligible, or when the
agent's status changes. The alert's fingerprint is ``graduation:<status>:<episode key>``: a new
episode is a new alert even while an older one is still open, and a repeat within an episode is
never raised at all (the open episode row remembers it was announced).
"""

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from alerts.models import AlertType, Severity
from alerts.services import alert_raise
from graduation.models import EligibilityEpisode

logger = logging.getLogger(__name__)


def episode_end(agent, *, now=None):
    """End the agent's open episode, if any; returns how many ended (0 or 1)."""
    return EligibilityEpisode.objects.filter(agent=agent, ended_at__isnull=True).update(ended_at=now or timezone.now())


def episode_observe(agent, *, result, key, now=None):
    """Feed one eligibility check to the agent's episode; returns (episode or None, alert raised)."""
    now = now or timezone.now()
    if not result.get("eligible"):
        episode_end(agent, now=now)
        return None, False
    current = EligibilityEpisode.objects.filter(agent=agent, ended_at__isnull=True).first()
    if current is not None and current.from_status == agent.status:
        return current, False
    with transaction.atomic():
        if current is not None:
            episode_end(agent, now=now)
        try:
            with transaction.atomic():
                episode = EligibilityEpisode.objects.create(
                    agent=agent, from_status=agent.status, started_key=key, started_at=now
                )
        except IntegrityError:
            logger.info("agent %s: a concurrent check opened the eligibility episode", agent.pk)
            return None, False
        target = result.get("target_status")
        alert, _created = alert_raise(
            agent, alert_type=AlertType.GRADUATION_READY, severity=Severity.INFO,
            message=f"{agent.name} meets its graduation criteria for {target} (since {key.replace(':', ' ')})"
            + (": it moves to paper trading automatically." if agent.auto_graduate and target == "paper_trading"
               else "."),
            fingerprint=f"graduation:{agent.status}:{key}",
            details={"from": agent.status, "target": target, "episode": key, "criteria": result.get("criteria"),
                     "window": result.get("window")},
        )
        episode.alert_id = alert.pk
        episode.save(update_fields=["alert_id"])
    return episode, True
