"""Domain signals: how `agents` announces what happened without importing alerts or graduation.

Each is sent after the transaction that recorded the event has committed. Receivers live in
the other apps' AppConfig.ready() and only call a service of their own app.
"""

from django.dispatch import Signal

# kwargs: agent_id, iteration_id, status ("succeeded" | "failed")
iteration_finished = Signal()
# kwargs: agent_id, reason, details
learning_converged = Signal()
# kwargs: agent_id, version_id, refinement_id (None for rollback/manual), automatic (bool)
refinement_applied = Signal()
