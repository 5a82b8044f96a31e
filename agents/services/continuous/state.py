"""The continuous-learning loop's states and the rules deriving them from the rows (see the
package docstring); nothing here writes."""

import datetime as dt

from django.db.models import Count, Max, Q
from django.utils import timezone

from agents.models import ContinuousState, IterationStatus, LearningIteration

LOOP_STATES = (ContinuousState.RUNNING, ContinuousState.COOLING_DOWN, ContinuousState.CAPPED)
ACTIVE_STATUSES = (IterationStatus.QUEUED, IterationStatus.RUNNING)
CONVERGENCE_WINDOW = 3
QUEUE_DEPTH_PER_SLOT = 4
EVENT_STARTED = "continuous_started"
EVENT_STOPPED = "continuous_stopped"
EVENT_CAPPED = "continuous_capped"
EVENT_CONVERGED = "continuous_converged"
# Stands in for "never finished" so the SQL eligibility test has no NULL in it.
LONG_AGO = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
REASON_MAX = 300


# --- time ---------------------------------------------------------------------------------
def day_bounds(now=None):
    """Today's [start, end) in settings.TIME_ZONE, as aware datetimes."""
    now = now or timezone.now()
    tz = timezone.get_default_timezone()
    day = timezone.localtime(now, tz).date()
    start = dt.datetime.combine(day, dt.time.min, tzinfo=tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    return start, end


def loop_facts(agent, now):
    """Today's count, last end and active count of one agent, in one query."""
    start, end = day_bounds(now)
    facts = LearningIteration.objects.filter(agent_id=agent.pk).aggregate(
        today=Count("pk", filter=Q(queued_at__gte=start, queued_at__lt=end)),
        last_finished=Max("finished_at"),
        active=Count("pk", filter=Q(status__in=ACTIVE_STATUSES)),
    )
    facts["day_end"] = end
    return facts


def derive_state(agent, facts, now):
    """The loop state the rules give for an agent whose loop is on."""
    if facts["active"]:
        return ContinuousState.RUNNING
    if facts["today"] >= agent.max_iterations_per_day:
        return ContinuousState.CAPPED
    last = facts["last_finished"]
    if last is not None and last + dt.timedelta(minutes=agent.min_iteration_gap_minutes) > now:
        return ContinuousState.COOLING_DOWN
    return ContinuousState.RUNNING


def next_eligible(agent, facts, now):
    if facts["active"]:
        return None  # known once the active iteration ends
    moments = [now]
    if facts["last_finished"] is not None:
        moments.append(facts["last_finished"] + dt.timedelta(minutes=agent.min_iteration_gap_minutes))
    if facts["today"] >= agent.max_iterations_per_day:
        moments.append(facts["day_end"])
    return max(moments)


def loop_on(agent):
    return agent.continuous_learning_enabled and agent.continuous_state in LOOP_STATES
