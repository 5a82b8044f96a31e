"""Continuous learning: an agent runs one iteration after another by itself, within bounds.

The loop is driven by the beat, not by a worker: `continuous_tick` runs every minute
(CELERY_BEAT_SCHEDULE "continuous-learning-tick") and every fact it needs is in the database
(the agent's continuous_* columns and its iteration rows). A worker or beat restart loses
nothing; a missed tick is caught up by the next one.

States (TradingAgent.continuous_state)
    stopped       not learning continuously: never started, or stopped by a person.
    running       the loop is on and not held back: an iteration is queued or running, or the
                  agent is due and waits for the next tick (or for room in the queue, below).
    cooling_down  the last iteration ended less than min_iteration_gap_minutes ago.
    capped        max_iterations_per_day iterations today; it resumes by itself the next day.
    converged     learning stopped because the score stopped moving (Convergence, below);
                  continuous_learning_enabled is cleared. Starting it again restarts the loop.
The stored state is refreshed after each iteration (`after_iteration`) and by each tick, so it
lags by at most a minute; `continuous_status` derives it from the rows at the time asked.

Rules
    Day boundary: a day is [local midnight, next local midnight) in settings.TIME_ZONE (the lab's
        time zone, also the beat's). Midnights are wall-clock ones, so a DST day lasts 23 or 25 h.
    Daily cap: every iteration row of the agent whose queued_at falls within today counts,
        whatever its trigger (manual, schedule, api, continuous) and its outcome (failed ones
        too): the cap bounds what one agent costs per day, and a failed run cost as much. The cap
        only stops the loop from queueing; a person's manual iteration is never refused by it.
    Cooldown: an iteration is queued once min_iteration_gap_minutes have passed since the agent's
        last iteration ended (its latest finished_at, any trigger); never, while one is queued or
        running. With no finished iteration the agent is due at once; a gap of 0 means the next tick.
    Queue depth: a tick queues at most QUEUE_DEPTH_PER_SLOT * LAB_MAX_CONCURRENT_ITERATIONS minus
        the iterations already waiting in the queue lab-wide, longest-waiting agents first (never
        finished, then oldest finished_at). Queueing thousands at once would only pile up deferred
        messages behind the concurrency cap; the rest are queued by the next ticks.
    Convergence: improvement is defined in agents.services.learning (relative change of the
        validation score against the previous succeeded iteration). After a succeeded iteration,
        the loop has converged when the last CONVERGENCE_WINDOW (3) succeeded iterations since the
        loop was last started all have an improvement and the MEAN OF THEIR ABSOLUTE VALUES is below
        convergence_threshold: the score has stopped moving. Absolute values because a score that
        swings +20% / -20% has not converged, while a signed mean would cancel it out to ~0 (and
        would call a steadily worsening loop "converged": that one is bounded by the daily cap and
        is the performance monitor's business). Only iterations queued since the last start count,
        so a restarted agent runs at least three more before it can converge again. A threshold of
        0 never converges. On convergence the event is logged and `learning_converged` is sent once,
        after commit.
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
