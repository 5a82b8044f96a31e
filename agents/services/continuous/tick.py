"""The beat's minute tick of continuous learning: refresh the loop states, queue the due agents."""

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.db.models import (
    Count,
    DateTimeField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.db.models.lookups import GreaterThan, LessThanOrEqual
from django.utils import timezone

from agents.models import ContinuousState, IterationStatus, IterationTrigger, LearningIteration, TradingAgent
from agents.services.continuous.state import (
    ACTIVE_STATUSES,
    LONG_AGO,
    LOOP_STATES,
    QUEUE_DEPTH_PER_SLOT,
    day_bounds,
)
from agents.services.dispatch import iteration_dispatch


def continuous_tick(now=None):
    """Refresh loop states and queue the due agents' iterations, in a fixed number of queries.

    At most: a count of the queue, three conditional UPDATEs (capped, cooling_down, running),
    one SELECT of due agents, one INSERT of the iterations (INSERT ... ignore conflicts; the
    budget keeps it to one batch) and one SELECT reading them back. `now` defaults to the
    current time; iterations get queued_at = the current time (auto_now_add).
    """
    now = now or timezone.now()
    start, end = day_bounds(now)
    summary = {"at": now.isoformat(), "capped": 0, "cooling": 0, "resumed": 0, "queued": 0, "budget": 0}
    iterations = LearningIteration.objects.filter(agent=OuterRef("pk"))
    today = Coalesce(
        Subquery(
            iterations.filter(queued_at__gte=start, queued_at__lt=end)
            .order_by().values("agent").annotate(c=Count("pk")).values("c")
        ),
        Value(0),
        output_field=IntegerField(),
    )
    last_finished = Coalesce(
        Subquery(iterations.filter(finished_at__isnull=False).order_by("-finished_at").values("finished_at")[:1]),
        Value(LONG_AGO),
        output_field=DateTimeField(),
    )
    # Wrapped as IntegerField: SQLite's duration arithmetic refuses a PositiveIntegerField.
    minutes = ExpressionWrapper(F("min_iteration_gap_minutes"), output_field=IntegerField())
    gap = ExpressionWrapper(minutes * Value(dt.timedelta(minutes=1)), output_field=DurationField())
    eligible_at = ExpressionWrapper(last_finished + gap, output_field=DateTimeField())
    last_number = Coalesce(
        Subquery(iterations.order_by("-number").values("number")[:1]), Value(0), output_field=IntegerField()
    )

    with transaction.atomic():
        idle = TradingAgent.objects.filter(
            ~Exists(iterations.filter(status__in=ACTIVE_STATUSES)),
            continuous_learning_enabled=True,
            continuous_state__in=LOOP_STATES,
        )
        summary["capped"] = (
            idle.exclude(continuous_state=ContinuousState.CAPPED)
            .filter(max_iterations_per_day__lte=today)
            .update(continuous_state=ContinuousState.CAPPED)
        )
        under_cap = idle.filter(max_iterations_per_day__gt=today)
        summary["cooling"] = (
            under_cap.exclude(continuous_state=ContinuousState.COOLING_DOWN)
            .filter(GreaterThan(eligible_at, Value(now)))
            .update(continuous_state=ContinuousState.COOLING_DOWN)
        )
        summary["resumed"] = (
            under_cap.exclude(continuous_state=ContinuousState.RUNNING)
            .filter(LessThanOrEqual(eligible_at, Value(now)))
            .update(continuous_state=ContinuousState.RUNNING)
        )
        waiting = LearningIteration.objects.filter(status=IterationStatus.QUEUED).count()
        budget = max(0, QUEUE_DEPTH_PER_SLOT * settings.LAB_MAX_CONCURRENT_ITERATIONS - waiting)
        summary["budget"] = budget
        if budget == 0:
            return summary
        due = list(
            under_cap.filter(LessThanOrEqual(eligible_at, Value(now)), continuous_state=ContinuousState.RUNNING)
            .annotate(last_number=last_number, last_finished=last_finished)
            .order_by("last_finished", "pk")
            .values_list("pk", "current_version_id", "last_number")[:budget]
        )
        if not due:
            return summary
        minute = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%MZ")
        keys = {agent_id: f"continuous:{agent_id}:{minute}" for agent_id, _v, _n in due}
        # ignore_conflicts: the database refuses a second active iteration, a number taken
        # meanwhile or a key already used this minute; those agents are simply not queued.
        LearningIteration.objects.bulk_create(
            [
                LearningIteration(
                    agent_id=agent_id, number=number + 1, trigger=IterationTrigger.CONTINUOUS,
                    status=IterationStatus.QUEUED, idempotency_key=keys[agent_id], version_id=version_id,
                )
                for agent_id, version_id, number in due
            ],
            ignore_conflicts=True,
        )
        queued = list(
            LearningIteration.objects.filter(
                agent_id__in=keys, idempotency_key__in=keys.values(), status=IterationStatus.QUEUED
            )
            .order_by()
            .values_list("pk", flat=True)
        )
        for iteration_id in queued:
            iteration_dispatch(iteration_id)  # a broker that is down is logged; the rows stay queued
        summary["queued"] = len(queued)
    return summary
