"""Writes that must not race an agent's deletion.

An agent may be deleted at any time, also while one of its iterations runs on a worker
(DELETE answers 204 at once: the person asked for it, and nothing can be learned for an agent
that no longer exists). The worker finds out when it records the outcome: the finishing
transaction first takes the agent's row lock, and if the row is gone it raises AgentGone, which
learning turns into one INFO log line instead of a foreign-key error and a crashed task.

The lock orders the two writers on PostgreSQL: agent_delete takes the same row lock first, so
either the delete waits for the outcome to commit (and then deletes it with the agent), or the
outcome waits for the delete (and then finds no agent). Without it the delete could collect the
iteration's rows just before the outcome inserts more, and fail at commit on the foreign key.
SQLite's IMMEDIATE transactions already serialise every writer.
"""

from contextlib import contextmanager

from django.db import transaction

from agents.models import TradingAgent


class AgentGone(Exception):
    """The agent was deleted while work for it was in flight."""

    def __init__(self, agent_id):
        self.agent_id = agent_id
        super().__init__(f"agent {agent_id} no longer exists")


def lock_agent_row(agent_id):
    """Inside a transaction: wait for and hold the agent's row lock; AgentGone if it was deleted."""
    if not list(TradingAgent.objects.select_for_update().filter(pk=agent_id).values_list("pk", flat=True)):
        raise AgentGone(agent_id)


@contextmanager
def agent_locked(agent_id):
    """One transaction holding the agent's row lock (AgentGone when the agent no longer exists)."""
    with transaction.atomic():
        lock_agent_row(agent_id)
        yield
