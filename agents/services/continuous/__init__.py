"""Continuous learning: an agent runs one iteration after another by itself, within bounds.

The beat drives the loop (``continuous_tick`` every minute) and every fact is in the database,
so a restart loses nothing and a missed tick is caught up. States (``continuous_state``):
stopped, running, cooling_down (last iteration ended less than ``min_iteration_gap_minutes``
ago), capped (``max_iterations_per_day`` reached; resumes the next day), converged.

Rules, and why:
    Day: [local midnight, next local midnight) in settings.TIME_ZONE (23 or 25 h across DST).
    Cap: every iteration queued today counts, any trigger, failed ones too (a failed run cost as
        much); it only stops the loop from queueing, never a person's manual iteration.
    Cooldown: due once the gap has passed since the last iteration ended; never while one is
        queued or running.
    Queue depth: a tick queues at most QUEUE_DEPTH_PER_SLOT * LAB_MAX_CONCURRENT_ITERATIONS minus
        those already waiting, longest-waiting agents first (more would only pile up behind the
        concurrency cap).
    Convergence: the last CONVERGENCE_WINDOW (3) succeeded iterations since the last start have
        mean(|improvement|) < convergence_threshold. Absolute values, because +20% / -20% swings
        have not converged though their signed mean is ~0 (a steadily worsening loop is bounded
        by the cap and is the monitor's business). A threshold of 0 never converges.
"""


from agents.services.continuous.control import continuous_start, continuous_status, continuous_stop
from agents.services.continuous.convergence import after_iteration, convergence_window
from agents.services.continuous.state import CONVERGENCE_WINDOW, LOOP_STATES, QUEUE_DEPTH_PER_SLOT, day_bounds
from agents.services.continuous.tick import continuous_tick

__all__ = [
    "CONVERGENCE_WINDOW",
    "LOOP_STATES",
    "QUEUE_DEPTH_PER_SLOT",
    "after_iteration",
    "continuous_start",
    "continuous_status",
    "continuous_stop",
    "continuous_tick",
    "convergence_window",
    "day_bounds",
]
