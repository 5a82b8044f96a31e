"""Receivers of agents' domain signals (connected in TournamentsConfig.ready()).

They run after the sender's transaction committed; a failure is logged and never propagates.
"""

import logging

from tournaments.services.rounds import rounds_after_iteration

logger = logging.getLogger(__name__)


def on_iteration_finished(sender, agent_id=None, iteration_id=None, status=None, **kwargs):
    try:
        rounds_after_iteration(agent_id, iteration_id)
    except Exception:
        logger.exception("closing the tournament rounds of iteration %s of agent %s failed", iteration_id, agent_id)
