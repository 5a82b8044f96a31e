import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.db.models import Max
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from agents import signals
from agents.models import (
    ActivityLog,
    ContinuousState,
    IterationStatus,
    IterationTrigger,
    LearningIteration,
    TradingAgent,
)
from agents.services import continuous, learning
from agents.tasks import continuous_tick_task
from core.errors import ValidationFailed
from tests.factories import InstrumentFactory, UserFactory, make_agent, random_walk_bars

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NY = ZoneInfo("America/New_York")


@pytest.fixture
def instrument():
    return random_walk_bars(InstrumentFactory(symbol="SYNC"))


@pytest.fixture
def converged_events():
    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    signals.learning_converged.connect(receiver, weak=False)
    yield received
    signals.learning_converged.disconnect(receiver)


def agent_on(instrument, **settings_values):
    agent = make_agent(instrument=instrument, **settings_values)
    return continuous.continuous_start(agent, actor=agent.owner)


def add_iteration(agent, *, queued_at, status=IterationStatus.SUCCEEDED, improvement=0.5, score=1.0,
                  trigger=IterationTrigger.CONTINUOUS, ran_for=dt.timedelta(minutes=2)):
    """An iteration row as the learning service leaves it, at a chosen time."""
    number = (LearningIteration.objects.filter(agent=agent).aggregate(m=Max("number"))["m"] or 0) + 1
    iteration = LearningIteration.objects.create(
        agent=agent, number=number, trigger=trigger, status=status, version_id=agent.current_version_id,
        score=score if status == IterationStatus.SUCCEEDED else None,
        improvement=improvement if status == IterationStatus.SUCCEEDED else None,
    )
    finished = status in (IterationStatus.SUCCEEDED, IterationStatus.FAILED)
    LearningIteration.objects.filter(pk=iteration.pk).update(
        queued_at=queued_at,
        started_at=queued_at if status != IterationStatus.QUEUED else None,
        finished_at=queued_at + ran_for if finished else None,
    )
    iteration.refresh_from_db()
    return iteration


def finish(iteration, *, improvement=0.5, status=IterationStatus.SUCCEEDED):
    """What a worker does with a queued iteration, then the after-commit bookkeeping."""
    from django.utils import timezone

    LearningIteration.objects.filter(pk=iteration.pk).update(
        status=status, started_at=timezone.now(), finished_at=timezone.now(),
        score=1.0 if status == IterationStatus.SUCCEEDED else None,
        improvement=improvement if status == IterationStatus.SUCCEEDED else None,
    )
    return continuous.after_iteration(iteration.pk)


def state_of(agent):
    return TradingAgent.objects.values_list("continuous_state", flat=True).get(pk=agent.pk)


def queued_for(agent):
    return list(LearningIteration.objects.filter(agent=agent, status=IterationStatus.QUEUED))


# --- the tick -----------------------------------------------------------------------------
def test_tick_queues_due_agents_only(instrument, clock, django_capture_on_commit_callbacks):
    now = clock(dt.datetime(2025, 6, 2, 12, 0, tzinfo=UTC))
    fresh = agent_on(instrument)  # never ran: due at once
    rested = agent_on(instrument)
    add_iteration(rested, queued_at=now - dt.timedelta(hours=3))  # ended 3 h ago, gap 60 min: due
    cooling = agent_on(instrument)
    add_iteration(cooling, queued_at=now - dt.timedelta(minutes=20))
    capped = agent_on(instrument, max_iterations_per_day=2, min_iteration_gap_minutes=0)
    add_iteration(capped, queued_at=now - dt.timedelta(hours=2))
    add_iteration(capped, queued_at=now - dt.timedelta(hours=1))
    busy = agent_on(instrument)
    running = add_iteration(busy, queued_at=now - dt.timedelta(minutes=1), status=IterationStatus.RUNNING)
    off = make_agent(instrument=instrument)
    stopped = agent_on(instrument)
    continuous.continuous_stop(stopped, actor=stopped.owner)
    converged = agent_on(instrument)
    TradingAgent.objects.filter(pk=converged.pk).update(
        continuous_learning_enabled=False, continuous_state=ContinuousState.CONVERGED
    )

    with django_capture_on_commit_callbacks() as callbacks:
        summary = continuous.continuous_tick()

    assert summary["queued"] == 2 and len(callbacks) == 2  # one run_iteration_task per queued iteration
    for agent in (fresh, rested):
        [iteration] = queued_for(agent)
        assert iteration.trigger == IterationTrigger.CONTINUOUS
        assert iteration.version_id == agent.current_version_id
        assert iteration.idempotency_key == f"continuous:{agent.pk}:2025-06-02T12:00Z"
        assert state_of(agent) == ContinuousState.RUNNING
    assert queued_for(rested)[0].number == 2  # next number of that agent
    for agent in (cooling, capped, busy, off, stopped, converged):
        assert queued_for(agent) == []
    assert state_of(cooling) == ContinuousState.COOLING_DOWN
    assert state_of(capped) == ContinuousState.CAPPED
    assert state_of(busy) == ContinuousState.RUNNING
    assert LearningIteration.objects.get(pk=running.pk).status == IterationStatus.RUNNING
    assert state_of(off) == ContinuousState.STOPPED and state_of(converged) == ContinuousState.CONVERGED


def test_cooldown_holds_until_the_gap_has_passed_since_the_last_end(instrument, clock):
    start = clock(dt.datetime(2025, 6, 2, 9, 0, tzinfo=UTC))
    agent = agent_on(instrument, min_iteration_gap_minutes=60)
    assert continuous.continuous_tick()["queued"] == 1
    [iteration] = queued_for(agent)
    clock(start + dt.timedelta(minutes=10))  # it ran for 10 minutes: the gap counts from its end
    assert finish(iteration) == ContinuousState.COOLING_DOWN
    ended = start + dt.timedelta(minutes=10)

    for minutes in (1, 30, 59):
        clock(ended + dt.timedelta(minutes=minutes))
        assert continuous.continuous_tick()["queued"] == 0
        assert state_of(agent) == ContinuousState.COOLING_DOWN
    status = continuous.continuous_status(TradingAgent.objects.get(pk=agent.pk))
    assert status["state"] == "cooling_down"
    assert status["next_eligible_at"] == ended + dt.timedelta(minutes=60)

    clock(ended + dt.timedelta(minutes=60))
    summary = continuous.continuous_tick()
    assert summary["queued"] == 1 and summary["resumed"] == 1
    assert state_of(agent) == ContinuousState.RUNNING
    assert [it.number for it in queued_for(agent)] == [2]


def test_same_tick_twice_in_a_minute_queues_nothing_twice(instrument, clock):
    now = clock(dt.datetime(2025, 6, 2, 9, 0, 5, tzinfo=UTC))
    agent = agent_on(instrument, min_iteration_gap_minutes=0)
    assert continuous.continuous_tick()["queued"] == 1
    assert continuous.continuous_tick()["queued"] == 0  # one is already queued
    # Even when that one finished within the same minute, the minute's key is spent.
    [iteration] = queued_for(agent)
    clock(now + dt.timedelta(seconds=20))
    finish(iteration)
    assert continuous.continuous_tick()["queued"] == 0
    assert LearningIteration.objects.filter(agent=agent).count() == 1
    clock(now + dt.timedelta(minutes=1))
    assert continuous.continuous_tick()["queued"] == 1


@pytest.mark.parametrize("tz_name", ["UTC", "America/New_York"])
def test_daily_cap_holds_and_resumes_after_local_midnight(instrument, clock, tz_name):
    tz = ZoneInfo(tz_name)
    with override_settings(TIME_ZONE=tz_name):
        evening = clock(dt.datetime(2025, 3, 8, 21, 0, tzinfo=tz))
        agent = agent_on(instrument, max_iterations_per_day=3, min_iteration_gap_minutes=0)
        # A manual iteration counts towards the cap like the loop's own.
        add_iteration(agent, queued_at=evening - dt.timedelta(hours=1), trigger=IterationTrigger.MANUAL)
        states = []
        for minute in (0, 5):
            clock(evening + dt.timedelta(minutes=minute))
            assert continuous.continuous_tick()["queued"] == 1
            [iteration] = queued_for(agent)
            states.append(finish(iteration, status=IterationStatus.FAILED if minute else IterationStatus.SUCCEEDED))
        assert states == [ContinuousState.RUNNING, ContinuousState.CAPPED]  # the failed one counted too
        assert ActivityLog.objects.filter(agent=agent, event="continuous_capped").count() == 1
        status = continuous.continuous_status(TradingAgent.objects.get(pk=agent.pk))
        assert status["state"] == "capped" and status["iterations_today"] == 3
        midnight = dt.datetime(2025, 3, 9, 0, 0, tzinfo=tz)
        assert status["next_eligible_at"] == midnight == status["day_ends_at"]

        clock(dt.datetime(2025, 3, 8, 23, 59, 59, tzinfo=tz))
        assert continuous.continuous_tick()["queued"] == 0
        assert state_of(agent) == ContinuousState.CAPPED

        clock(midnight + dt.timedelta(seconds=30))
        summary = continuous.continuous_tick()
        assert summary["resumed"] == 1 and summary["queued"] == 1
        assert state_of(agent) == ContinuousState.RUNNING
        assert continuous.continuous_status(TradingAgent.objects.get(pk=agent.pk))["iterations_today"] == 1


@override_settings(TIME_ZONE="America/New_York")
def test_the_day_is_the_lab_time_zone_day_not_utc(instrument, clock):
    # 21:30 in New York is already the next day in UTC: the New York day is not over.
    clock(dt.datetime(2025, 6, 2, 20, 0, tzinfo=NY))
    agent = agent_on(instrument, max_iterations_per_day=1, min_iteration_gap_minutes=0)
    add_iteration(agent, queued_at=dt.datetime(2025, 6, 2, 8, 0, tzinfo=NY))
    clock(dt.datetime(2025, 6, 2, 21, 30, tzinfo=NY))
    assert continuous.continuous_tick()["queued"] == 0
    assert state_of(agent) == ContinuousState.CAPPED
    clock(dt.datetime(2025, 6, 3, 0, 1, tzinfo=NY))
    assert continuous.continuous_tick()["queued"] == 1


@override_settings(TIME_ZONE="America/New_York")
def test_day_bounds_follow_wall_clock_midnights_across_dst():
    start, end = continuous.day_bounds(dt.datetime(2025, 3, 9, 12, 0, tzinfo=UTC))
    assert start == dt.datetime(2025, 3, 9, 5, 0, tzinfo=UTC)  # EST midnight
    assert end == dt.datetime(2025, 3, 10, 4, 0, tzinfo=UTC)  # EDT midnight: a 23-hour day
    start, end = continuous.day_bounds(dt.datetime(2025, 3, 9, 3, 0, tzinfo=UTC))  # 22:00 the day before
    assert start == dt.datetime(2025, 3, 8, 5, 0, tzinfo=UTC)


def test_queue_depth_bounds_a_tick_and_the_longest_waiting_go_first(instrument, clock):
    now = clock(dt.datetime(2025, 6, 2, 12, 0, tzinfo=UTC))
    rested = [agent_on(instrument) for _ in range(3)]
    for hours, agent in zip((5, 7, 6), rested, strict=True):
        add_iteration(agent, queued_at=now - dt.timedelta(hours=hours))
    fresh = [agent_on(instrument) for _ in range(3)]
    with override_settings(LAB_MAX_CONCURRENT_ITERATIONS=1):  # room for 4 waiting in the queue
        assert continuous.continuous_tick()["queued"] == 4
        first = {it.agent_id for it in LearningIteration.objects.filter(status=IterationStatus.QUEUED)}
        assert first == {a.pk for a in fresh} | {rested[1].pk}  # never ran, then the oldest end
        clock(now + dt.timedelta(minutes=1))
        summary = continuous.continuous_tick()
        assert summary["budget"] == 0 and summary["queued"] == 0
        assert all(state_of(a) == ContinuousState.RUNNING for a in rested)  # due, waiting for room
        LearningIteration.objects.filter(status=IterationStatus.QUEUED).update(status=IterationStatus.RUNNING)
        clock(now + dt.timedelta(minutes=2))
        assert continuous.continuous_tick()["queued"] == 2


@pytest.mark.parametrize("n_agents", [5, 50])
def test_tick_query_count_does_not_grow_with_agents(instrument, clock, n_agents):
    now = clock(dt.datetime(2025, 6, 2, 12, 0, tzinfo=UTC))
    agents = [agent_on(instrument, max_iterations_per_day=3) for _ in range(n_agents)]
    for i, agent in enumerate(agents):  # a mix: due, cooling down, capped
        if i % 5 == 1:
            add_iteration(agent, queued_at=now - dt.timedelta(minutes=15))
        elif i % 5 == 2:
            for hours in (3, 4, 5):
                add_iteration(agent, queued_at=now - dt.timedelta(hours=hours))
    with CaptureQueriesContext(connection) as queries:
        summary = continuous.continuous_tick()
    assert summary["queued"] == min(3 * n_agents // 5, 16)
    assert summary["cooling"] == n_agents // 5 and summary["capped"] == n_agents // 5
    # savepoint, queue count, 3 state updates, due select, insert, read-back, release
    assert len(queries) == 9, [q["sql"][:80] for q in queries.captured_queries]


def test_tick_task_calls_the_service(instrument, clock):
    clock(dt.datetime(2025, 6, 2, 12, 0, tzinfo=UTC))
    agent = agent_on(instrument)
    summary = continuous_tick_task()
    assert summary["queued"] == 1 and len(queued_for(agent)) == 1


# --- convergence --------------------------------------------------------------------------
def test_converges_from_a_real_iteration_history(instrument, clock, converged_events,
                                                 django_capture_on_commit_callbacks):
    clock(dt.datetime(2025, 6, 2, 9, 0, tzinfo=UTC))
    agent = agent_on(instrument, min_iteration_gap_minutes=0)
    finished = []
    signals.iteration_finished.connect(lambda sender, **kw: finished.append(kw["iteration_id"]), weak=False,
                                       dispatch_uid="test-continuous-finished")
    try:
        # No refinement is applied (auto-approval off), so the version and its validation score
        # stay the same: improvements None (first), 0, 0, 0.
        for n in range(1, 5):
            with django_capture_on_commit_callbacks(execute=True):
                iteration, _ = learning.iteration_run_now(agent, trigger=IterationTrigger.CONTINUOUS)
            assert iteration.status == IterationStatus.SUCCEEDED, iteration.error
            expected = ContinuousState.CONVERGED if n == 4 else ContinuousState.RUNNING
            assert state_of(agent) == expected, n
    finally:
        signals.iteration_finished.disconnect(dispatch_uid="test-continuous-finished")
    assert len(finished) == 4  # the bookkeeping ran before, and did not stop, iteration_finished

    agent.refresh_from_db()
    assert not agent.continuous_learning_enabled
    assert agent.continuous_stop_reason.startswith("converged: mean |improvement| 0.000000")
    log = ActivityLog.objects.get(agent=agent, event="continuous_converged")
    assert log.details["iterations"] == [4, 3, 2] and log.details["improvements"] == [0.0, 0.0, 0.0]
    assert len(converged_events) == 1
    assert converged_events[0]["agent_id"] == agent.pk
    assert converged_events[0]["details"]["threshold"] == 0.01
    assert converged_events[0]["reason"] == agent.continuous_stop_reason

    assert continuous.continuous_tick()["queued"] == 0
    status = continuous.continuous_status(agent)
    assert status["state"] == "converged" and status["next_eligible_at"] is None
    assert status["stop_reason"] == agent.continuous_stop_reason


@pytest.mark.parametrize(
    ("improvements", "converged"),
    [
        ([0.004, -0.002, 0.001], True),
        ([0.0, 0.0, 0.0], True),
        ([0.2, -0.2, 0.005], False),  # oscillating: the signed mean is ~0, the score is not settled
        ([0.05, 0.02, 0.01], False),
        ([0.001, 0.001, None], False),  # the first iteration has no improvement
    ],
)
def test_convergence_is_the_mean_absolute_improvement_of_the_last_three(instrument, clock, converged_events,
                                                                          django_capture_on_commit_callbacks,
                                                                          improvements, converged):
    now = clock(dt.datetime(2025, 6, 2, 9, 0, tzinfo=UTC))
    agent = agent_on(instrument, min_iteration_gap_minutes=0, max_iterations_per_day=50)
    add_iteration(agent, queued_at=now, improvement=0.9)  # older, out of the window
    add_iteration(agent, queued_at=now, status=IterationStatus.FAILED)  # failures are skipped
    last = None
    for value in reversed(improvements):
        last = add_iteration(agent, queued_at=now, improvement=value)
    with django_capture_on_commit_callbacks(execute=True):
        state = continuous.after_iteration(last.pk)
        again = continuous.after_iteration(last.pk)  # a redelivered announcement
    assert (state == ContinuousState.CONVERGED) is converged
    assert len(converged_events) == int(converged)  # sent once
    if converged:
        assert again is None  # the loop is off
    assert ActivityLog.objects.filter(agent=agent, event="continuous_converged").count() == int(converged)


def test_restarting_a_converged_agent_needs_three_new_iterations(instrument, clock, converged_events):
    now = clock(dt.datetime(2025, 6, 2, 9, 0, tzinfo=UTC))
    agent = agent_on(instrument, min_iteration_gap_minutes=0)
    for _ in range(3):
        last = add_iteration(agent, queued_at=now, improvement=0.0)
    assert continuous.after_iteration(last.pk) == ContinuousState.CONVERGED

    clock(now + dt.timedelta(hours=1))
    continuous.continuous_start(agent, actor=agent.owner)
    assert agent.continuous_state == ContinuousState.RUNNING and agent.continuous_stop_reason == ""
    assert ActivityLog.objects.filter(agent=agent, event="continuous_started").latest("id").message.startswith(
        "Continuous learning started (restarted after convergence)"
    )
    for n in range(1, 4):
        [iteration] = [LearningIteration.objects.get(pk=pk) for pk in _tick_ids(agent)]
        state = finish(iteration, improvement=0.0)
        assert (state == ContinuousState.CONVERGED) is (n == 3)
        clock(now + dt.timedelta(hours=1, minutes=n))


def _tick_ids(agent):
    continuous.continuous_tick()
    return [it.pk for it in queued_for(agent)]


def test_convergence_applies_only_to_agents_learning_continuously(instrument, clock, converged_events):
    now = clock(dt.datetime(2025, 6, 2, 9, 0, tzinfo=UTC))
    agent = make_agent(instrument=instrument)
    for _ in range(3):
        last = add_iteration(agent, queued_at=now, improvement=0.0)
    assert continuous.after_iteration(last.pk) is None
    assert state_of(agent) == ContinuousState.STOPPED and converged_events == []


def test_a_failing_bookkeeping_never_breaks_the_iteration(instrument, monkeypatch, caplog,
                                                          django_capture_on_commit_callbacks):
    agent = agent_on(instrument)
    finished = []
    signals.iteration_finished.connect(lambda sender, **kw: finished.append(kw["status"]), weak=False,
                                       dispatch_uid="test-continuous-broken")

    def broken(iteration_id):
        raise RuntimeError("boom")

    monkeypatch.setattr(continuous, "after_iteration", broken)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            iteration, _ = learning.iteration_run_now(agent, trigger=IterationTrigger.CONTINUOUS)
    finally:
        signals.iteration_finished.disconnect(dispatch_uid="test-continuous-broken")
    assert iteration.status == IterationStatus.SUCCEEDED
    assert finished == ["succeeded"]
    assert "continuous-learning bookkeeping failed" in caplog.text


# --- start, stop, status ------------------------------------------------------------------
def test_start_and_stop_are_logged_and_idempotent(instrument):
    agent = make_agent(instrument=instrument)
    owner = agent.owner
    continuous.continuous_start(agent, actor=owner)
    continuous.continuous_start(agent, actor=owner)
    agent.refresh_from_db()
    assert agent.continuous_learning_enabled and agent.continuous_state == ContinuousState.RUNNING
    assert ActivityLog.objects.filter(agent=agent, event="continuous_started").count() == 1

    continuous.continuous_stop(agent, actor=owner)
    continuous.continuous_stop(agent, actor=owner, reason="again")
    agent.refresh_from_db()
    assert not agent.continuous_learning_enabled and agent.continuous_state == ContinuousState.STOPPED
    assert agent.continuous_stop_reason == f"stopped by {owner.username}"
    [log] = ActivityLog.objects.filter(agent=agent, event="continuous_stopped")
    assert log.actor == owner

    with pytest.raises(ValidationFailed) as err:
        continuous.continuous_stop(agent, actor=owner, reason="x" * 301)
    assert "reason" in err.value.errors


def test_start_derives_the_state_from_the_history(instrument, clock):
    now = clock(dt.datetime(2025, 6, 2, 9, 0, tzinfo=UTC))
    agent = make_agent(instrument=instrument)
    add_iteration(agent, queued_at=now - dt.timedelta(minutes=5), trigger=IterationTrigger.MANUAL)
    continuous.continuous_start(agent, actor=agent.owner)
    assert state_of(agent) == ContinuousState.COOLING_DOWN


def test_status_payload(instrument, clock):
    agent = make_agent(instrument=instrument, max_iterations_per_day=5)
    add_iteration(agent, queued_at=dt.datetime(2025, 6, 1, 23, 0, tzinfo=UTC), improvement=0.3)  # yesterday
    started = clock(dt.datetime(2025, 6, 2, 8, 0, tzinfo=UTC))
    continuous.continuous_start(agent, actor=agent.owner)
    now = clock(dt.datetime(2025, 6, 2, 10, 20, tzinfo=UTC))
    add_iteration(agent, queued_at=now - dt.timedelta(hours=2), improvement=0.2)
    add_iteration(agent, queued_at=now - dt.timedelta(hours=1), status=IterationStatus.FAILED)
    last = add_iteration(agent, queued_at=dt.datetime(2025, 6, 2, 9, 58, tzinfo=UTC), improvement=-0.1)
    agent.refresh_from_db()

    status = continuous.continuous_status(agent)
    assert status == {
        "state": "cooling_down",
        "enabled": True,
        "iterations_today": 3,
        "max_iterations_per_day": 5,
        "min_iteration_gap_minutes": 60,
        "day_ends_at": dt.datetime(2025, 6, 3, tzinfo=UTC),
        "last_finished_at": last.finished_at,
        "next_eligible_at": dt.datetime(2025, 6, 2, 11, 0, tzinfo=UTC),
        "last_improvements": [-0.1, 0.2, 0.3],
        # Convergence only counts iterations since the loop started: two so far, no verdict yet.
        "convergence": {
            "threshold": 0.01, "window": 3, "counted_since": started,
            "improvements": [-0.1, 0.2], "mean_abs_improvement": None,
        },
        "stop_reason": "",
        "active_iteration": None,
    }

    queued = add_iteration(agent, queued_at=now, status=IterationStatus.QUEUED)
    status = continuous.continuous_status(agent)
    assert status["state"] == "running" and status["next_eligible_at"] is None
    assert status["active_iteration"]["number"] == queued.number
    assert status["active_iteration"]["status"] == "queued"

    continuous.continuous_stop(agent, actor=agent.owner, reason="enough for today")
    status = continuous.continuous_status(agent)
    assert status["state"] == "stopped" and status["stop_reason"] == "enough for today"
    assert status["next_eligible_at"] is None and not status["enabled"]


# --- API ----------------------------------------------------------------------------------
@pytest.mark.parametrize("slash", ["", "/"])
def test_api_start_status_stop(api, user, instrument, slash):
    agent = make_agent(owner=user, instrument=instrument)
    base = f"/api/learning-agents/{agent.pk}/continuous-learning"

    resp = api.post(f"{base}/start{slash}")
    assert resp.status_code == 200, resp.data
    assert resp.data["state"] == "running" and resp.data["enabled"] is True
    assert resp.data["max_iterations_per_day"] == 10 and resp.data["iterations_today"] == 0

    resp = api.get(f"{base}/status{slash}")
    assert resp.status_code == 200
    assert set(resp.data) >= {"state", "iterations_today", "max_iterations_per_day", "next_eligible_at",
                              "last_improvements", "stop_reason", "active_iteration"}

    resp = api.post(f"{base}/stop{slash}", {"reason": "maintenance"}, format="json")
    assert resp.status_code == 200
    assert resp.data["state"] == "stopped" and resp.data["stop_reason"] == "maintenance"
    agent.refresh_from_db()
    assert agent.continuous_stop_reason == "maintenance"

    resp = api.post(f"{base}/stop{slash}", {"reason": "x" * 301}, format="json")
    assert resp.status_code == 400 and "reason" in resp.data


def test_api_another_owners_agent_is_a_404(api, instrument):
    other = make_agent(owner=UserFactory(username="bob"), instrument=instrument)
    base = f"/api/learning-agents/{other.pk}/continuous-learning"
    assert api.post(f"{base}/start").status_code == 404
    assert api.post(f"{base}/stop").status_code == 404
    assert api.get(f"{base}/status").status_code == 404
    assert state_of(other) == ContinuousState.STOPPED


def test_api_refuses_anonymous(instrument):
    agent = make_agent(instrument=instrument)
    assert APIClient().post(f"/api/learning-agents/{agent.pk}/continuous-learning/start").status_code == 403
