"""What happens once an iteration has ended and its transaction committed."""

import logging

from django.db import transaction

from agents import signals
from agents.models import TradingAgent
from agents.services import continuous

logger = logging.getLogger(__name__)


def announce_iteration_finished(iteration):
    """After the transaction that ended `iteration` commits: continuous-learning bookkeeping,
    then `iteration_finished` to the other apps. Learning and the reaper both end iterations."""
    agent_id, iteration_id, status = iteration.agent_id, iteration.pk, iteration.status

    def after_commit():
        # Continuous-learning bookkeeping (convergence, cap, cooldown) first, so receivers of
        # iteration_finished see the loop's new state; its failure never breaks the iteration.
        try:
            continuous.after_iteration(iteration_id)
        except Exception:
            logger.exception("continuous-learning bookkeeping failed after iteration %s", iteration_id)
        # Robust: a failing receiver (alerts, graduation) is logged and never fails the task
        # of an iteration that has already committed, nor stops the other receivers.
        for receiver, result in signals.iteration_finished.send_robust(
            sender=TradingAgent, agent_id=agent_id, iteration_id=iteration_id, status=status
        ):
            if isinstance(result, Exception):
                logger.error("iteration_finished receiver %r failed for iteration %s: %r",
                             receiver, iteration_id, result)

    transaction.on_commit(after_commit)
