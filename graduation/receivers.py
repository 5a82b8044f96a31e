"""Receivers of agents' domain signals (connected in GraduationConfig.ready()).

Each calls one graduation service. They run after the sender's transaction committed; a failure
is logged and never propagates (agents sends with ``send()``, so an exception here would reach
the iteration's caller and the receivers after this one).
"""

import logging

from graduation import challenger, reactions

logger = logging.getLogger(__name__)


def on_iteration_finished(sender, agent_id=None, iteration_id=None, status=None, **kwargs):
    try:
        reactions.after_iteration(agent_id, iteration_id, status)
    except Exception:
        logger.exception("graduation check failed after iteration %s of agent %s", iteration_id, agent_id)


def on_alert_raised(sender, agent_id=None, alert_type=None, severity=None, alert_id=None, **kwargs):
    try:
        reactions.after_alert(agent_id, alert_type, severity)
    except Exception:
        logger.exception("graduation check failed after alert %s about agent %s", alert_id, agent_id)


def on_refinement_applied(sender, agent_id=None, version_id=None, refinement_id=None, automatic=False, **kwargs):
    # A trading agent's new version becomes the challenger (a shadow paper account), not the traded one.
    try:
        challenger.challenger_sync(agent_id)
    except Exception:
        logger.exception("opening the challenger of agent %s (version %s) failed", agent_id, version_id)
