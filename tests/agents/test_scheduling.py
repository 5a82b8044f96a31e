"""Scheduled iterations: cron validation, beat rows, next fire times, slots, reconcile, API."""

import datetime as dt
import json
import zoneinfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks

from agents.models import ActivityLog, IterationStatus, LearningIteration, TradingAgent
from agents.services import scheduling
from agents.services.agents import agent_delete
from agents.tasks import reconcile_schedules_task, scheduled_iteration_task
from core.errors import ValidationFailed
from tests.factories import InstrumentFactory, UserFactory, make_agent, random_walk_bars

pytestmark = pytest.mark.django_db

UTC = dt.UTC
T0 = dt.datetime(2026, 1, 5, 8, 10, tzinfo=UTC)  # a Monday


@pytest.fixture
def owner(user):
    return user  # the API tests below act as this owner, through the suite's `api` api


@pytest.fixture
def instrument():
    return random_walk_bars(InstrumentFactory(symbol="SYNS"), n=300)


@pytest.fixture
def agent(owner, instrument):
    return make_agent(owner=owner, instrument=instrument, name="Scheduled")


@pytest.fixture
def frozen():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def row_of(agent):
    return PeriodicTask.objects.select_related("crontab").get(name=f"agent:{agent.pk}:learn")


def snapshot(agent):
    agent.refresh_from_db()
    return {
        "columns": (agent.auto_learn_enabled, agent.learning_schedule, agent.schedule_timezone,
                    agent.next_scheduled_iteration),
        "tasks": list(PeriodicTask.objects.order_by("pk").values_list("name", "enabled", "crontab_id")),
        "crontabs": CrontabSchedule.objects.count(),
        "activity": ActivityLog.objects.count(),
        "last_change": PeriodicTasks.last_change(),
    }


# --- validation -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("60 * * * *", "field 1 (minute) '60' is out of range 0-59"),
        ("0 25 * * *", "field 2 (hour) '25' is out of range 0-23"),
        ("0 0 32 * *", "field 3 (day_of_month) '32' is out of range 1-31"),
        ("0 0 0 * *", "field 3 (day_of_month) '0' is out of range 1-31"),
        ("0 0 * 13 *", "field 4 (month_of_year) '13' is out of range 1-12"),
        ("0 0 * * 8", "field 5 (day_of_week) '8' is out of range 0-7"),
        ("0 1,30 * * *", "field 2 (hour) '1,30' has 30 out of range 0-23"),
        ("0 0 * * *  *", "expected five fields"),
        ("0 0 * *", "expected five fields"),
        ("garbage", "expected five fields"),
        ("a b c d e", "field 1 (minute) 'a' is not a number"),
        ("", "must not be blank"),
        ("*/0 * * * *", "field 1 (minute) '*/0' has a step /0 outside 1-59"),
        ("0 22-2 * * *", "field 2 (hour) '22-2' has a range 22-2 that runs backwards"),
        ("0 0 L * *", "field 3 (day_of_month) 'L' is not a number"),
        ("0 0 ? * *", "field 3 (day_of_month) '?' is not valid cron syntax"),
        ("0 0 * mon *", "field 4 (month_of_year) 'mon' is neither a number nor a name"),
        ("0 0 * * funday", "field 5 (day_of_week) 'funday' is neither a number nor a name"),
        ("0 0 30 2 *", "never occurs in field 4 (month_of_year) '2'"),
        ("1,,2 * * * *", "field 1 (minute) '1,,2' has an empty item"),
        ("@reboot", "unknown macro '@reboot'"),
    ],
)
def test_bad_cron_is_refused_naming_the_field_and_nothing_changes(agent, owner, cron, expected):
    scheduling.auto_learn_enable(agent, actor=owner, cron="15 * * * *")
    before = snapshot(agent)
    with pytest.raises(ValidationFailed) as caught:
        scheduling.schedule_set(agent, cron=cron, timezone="UTC", actor=owner)
    assert list(caught.value.errors) == ["cron"]
    assert expected in caught.value.errors["cron"], caught.value.errors
    with pytest.raises(ValidationFailed):
        scheduling.auto_learn_enable(agent, actor=owner, cron=cron)
    assert snapshot(agent) == before


def test_unknown_timezone_is_refused_and_both_errors_are_named(agent, owner):
    before = snapshot(agent)
    with pytest.raises(ValidationFailed) as caught:
        scheduling.schedule_set(agent, cron="0 25 * * *", timezone="Mars/Base", actor=owner)
    assert caught.value.errors == {
        "cron": "field 2 (hour) '25' is out of range 0-23",
        "timezone": "unknown time zone 'Mars/Base'",
    }
    assert snapshot(agent) == before


def test_parse_cron_normalises_names_case_macros_and_zone():
    parsed = scheduling.parse_cron("  0   9 * JAN-mar  MON-fri ", "europe/london")
    assert parsed.expression == "0 9 * jan-mar mon-fri"
    assert parsed.timezone == "Europe/London"
    assert scheduling.parse_cron("@daily").expression == "0 0 * * *"


def test_describe_cron_in_words():
    assert scheduling.describe_cron("0 9 * * 1-5") == "At 09:00, Monday through Friday"
    assert scheduling.describe_cron("*/15 * * * *") == "Every 15 minutes"
    assert scheduling.describe_cron("") == ""


def test_enabling_without_a_schedule_is_refused(agent, owner):
    before = snapshot(agent)
    with pytest.raises(ValidationFailed) as caught:
        scheduling.auto_learn_enable(agent, actor=owner)
    assert caught.value.errors == {"learning_schedule": "set a schedule first (a five-field cron)"}
    assert snapshot(agent) == before


# --- beat rows ------------------------------------------------------------------------------
def test_enable_creates_one_row_with_a_stable_name_on_a_shared_crontab(agent, owner, frozen):
    scheduling.auto_learn_enable(agent, actor=owner, cron="0 */6 * * *", timezone="Europe/London")
    row = row_of(agent)
    assert row.task == "agents.tasks.scheduled_iteration_task"
    assert json.loads(row.args) == [str(agent.pk)]
    assert row.enabled and row.queue == "default" and row.interval_id is None
    crontab = row.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_month, crontab.month_of_year, crontab.day_of_week) == (
        "0", "*/6", "*", "*", "*")
    assert str(crontab.timezone) == "Europe/London"

    scheduling.schedule_set(agent, cron="0 */6 * * *", timezone="Europe/London", actor=owner)
    scheduling.agent_schedule_sync(agent)
    assert PeriodicTask.objects.filter(name__endswith=":learn").count() == 1
    assert row_of(agent).pk == row.pk

    events = list(ActivityLog.objects.filter(agent=agent).values_list("event", flat=True))
    assert events.count("auto_learn_enabled") == 1 and "schedule_set" not in events  # unchanged: not logged


def test_agents_with_the_same_cron_and_zone_share_one_crontab_row(owner, instrument):
    first = make_agent(owner=owner, instrument=instrument, name="one")
    second = make_agent(owner=owner, instrument=instrument, name="two")
    third = make_agent(owner=owner, instrument=instrument, name="three")
    scheduling.auto_learn_enable(first, actor=owner, cron="30 9 * * 1-5")
    scheduling.auto_learn_enable(second, actor=owner, cron="30  9 * * 1-5")
    scheduling.auto_learn_enable(third, actor=owner, cron="30 9 * * 1-5", timezone="Asia/Tokyo")
    assert row_of(first).crontab_id == row_of(second).crontab_id != row_of(third).crontab_id
    assert CrontabSchedule.objects.count() == 2


def test_changing_the_schedule_moves_the_row_and_restarts_its_count(agent, owner, frozen):
    scheduling.auto_learn_enable(agent, actor=owner, cron="0 9 * * *")
    PeriodicTask.objects.filter(pk=row_of(agent).pk).update(last_run_at=T0 - dt.timedelta(days=1))
    scheduling.schedule_set(agent, cron="0 18 * * *", actor=owner)
    row = row_of(agent)
    assert row.crontab.hour == "18"
    # A stale last run under the old cron would make beat fire at once.
    assert row.last_run_at is None
    agent.refresh_from_db()
    assert agent.learning_schedule == "0 18 * * *"
    assert agent.next_scheduled_iteration == dt.datetime(2026, 1, 5, 18, 0, tzinfo=UTC)


def test_schedule_set_keeps_auto_learn_off_when_it_is_off(agent, owner):
    scheduling.schedule_set(agent, cron="0 9 * * *", actor=owner)
    agent.refresh_from_db()
    assert not agent.auto_learn_enabled and agent.next_scheduled_iteration is None
    assert not row_of(agent).enabled
    assert ActivityLog.objects.filter(agent=agent, event="schedule_set").count() == 1


def test_disable_disables_the_row_and_keeps_the_schedule(agent, owner, frozen):
    scheduling.auto_learn_enable(agent, actor=owner, cron="0 9 * * *")
    scheduling.auto_learn_disable(agent, actor=owner)
    agent.refresh_from_db()
    assert not agent.auto_learn_enabled and agent.learning_schedule == "0 9 * * *"
    assert agent.next_scheduled_iteration is None
    assert not row_of(agent).enabled
    scheduling.auto_learn_enable(agent, actor=owner)  # the kept schedule comes back
    assert row_of(agent).enabled
    assert PeriodicTask.objects.filter(name__endswith=":learn").count() == 1


def test_deleting_the_agent_removes_its_row(agent, owner):
    scheduling.auto_learn_enable(agent, actor=owner, cron="0 9 * * *")
    before = PeriodicTasks.last_change()
    agent_delete(agent, actor=owner)
    assert not PeriodicTask.objects.filter(name__endswith=":learn").exists()
    assert PeriodicTasks.last_change() >= before


def test_every_change_reaches_beat(agent, owner):
    with time_machine.travel(T0, tick=False):
        scheduling.auto_learn_enable(agent, actor=owner, cron="0 9 * * *")
        assert PeriodicTasks.last_change() == T0
    with time_machine.travel(T0 + dt.timedelta(minutes=1), tick=False):
        scheduling.auto_learn_disable(agent, actor=owner)
        assert PeriodicTasks.last_change() == T0 + dt.timedelta(minutes=1)


# --- fire times -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cron", "zone", "after", "expected"),
    [
        ("0 */6 * * *", "UTC", "2026-01-05T06:00:00", "2026-01-05T12:00:00"),  # strictly after
        ("0 */6 * * *", "UTC", "2026-01-05T05:59:59", "2026-01-05T06:00:00"),
        ("0 9 * * 1-5", "UTC", "2026-01-09T10:00:00", "2026-01-12T09:00:00"),  # Friday -> Monday
        ("0 9 * * *", "Europe/London", "2026-01-10T00:00:00", "2026-01-10T09:00:00"),  # GMT
        ("0 9 * * *", "Europe/London", "2026-06-10T00:00:00", "2026-06-10T08:00:00"),  # BST
        ("0 9 * * *", "Europe/London", "2026-03-28T09:30:00", "2026-03-29T08:00:00"),  # across spring DST
        ("0 9 * * *", "Europe/London", "2026-10-24T09:30:00", "2026-10-25T09:00:00"),  # across autumn DST
        ("30 1 * * *", "Europe/London", "2026-03-28T12:00:00", "2026-03-29T01:30:00"),  # skipped 01:30 -> 02:30 BST
        ("30 1 * * *", "Europe/London", "2026-10-24T12:00:00", "2026-10-25T00:30:00"),  # repeated: first one
        ("0 9 * * *", "America/New_York", "2026-01-05T00:00:00", "2026-01-05T14:00:00"),
        ("0 0 29 2 *", "UTC", "2026-01-01T00:00:00", "2028-02-29T00:00:00"),
    ],
)
def test_next_fire_time(cron, zone, after, expected):
    after = dt.datetime.fromisoformat(after).replace(tzinfo=UTC)
    assert scheduling.next_fire_time(cron, zone, after) == dt.datetime.fromisoformat(expected).replace(tzinfo=UTC)


def _brute_force_fires(cron, zone, start, hours):
    """Every minute of the window whose wall-clock time in the zone matches the cron (no DST days)."""
    parsed = scheduling.parse_cron(cron, zone)
    from celery.schedules import crontab

    spec = crontab(*parsed.fields[:2], day_of_week=parsed.day_of_week, day_of_month=parsed.day_of_month,
                   month_of_year=parsed.month_of_year)
    tz = zoneinfo.ZoneInfo(zone)
    fires = []
    for minute in range(hours * 60):
        moment = start + dt.timedelta(minutes=minute)
        local = moment.astimezone(tz)
        if (local.minute in spec.minute and local.hour in spec.hour and local.day in spec.day_of_month
                and local.month in spec.month_of_year and local.isoweekday() % 7 in spec.day_of_week):
            fires.append(moment)
    return fires


@pytest.mark.parametrize(
    ("cron", "zone"),
    [("*/20 9-11 * * 1-5", "UTC"), ("5 */3 1,15 * *", "Asia/Kolkata"), ("0 22 * * sun", "America/New_York"),
     ("45 23 * jan,feb *", "Europe/London")],
)
def test_next_and_last_fire_times_agree_with_a_brute_force_walk(cron, zone):
    start = dt.datetime(2026, 1, 1, tzinfo=UTC)
    expected = _brute_force_fires(cron, zone, start, hours=24 * 20)
    assert expected
    walked, moment = [], start - dt.timedelta(seconds=1)
    while (moment := scheduling.next_fire_time(cron, zone, moment)) <= expected[-1]:
        walked.append(moment)
    assert walked == expected
    for fire in expected[1:6]:
        assert scheduling.last_fire_at_or_before(cron, zone, fire + dt.timedelta(seconds=59)) == fire
        assert scheduling.last_fire_at_or_before(cron, zone, fire) == fire


def test_next_scheduled_iteration_follows_the_frozen_clock_and_the_zone(agent, owner):
    with time_machine.travel(dt.datetime(2026, 7, 1, 7, 30, tzinfo=UTC), tick=False):
        scheduling.auto_learn_enable(agent, actor=owner, cron="0 9 * * *", timezone="Europe/London")
        agent.refresh_from_db()
        assert agent.next_scheduled_iteration == dt.datetime(2026, 7, 1, 8, 0, tzinfo=UTC)  # 09:00 BST
        assert scheduling.schedule_state(agent)["description"] == "At 09:00 (Europe/London)"
    with time_machine.travel(dt.datetime(2026, 7, 1, 8, 30, tzinfo=UTC), tick=False):
        scheduling.schedule_set(agent, cron="0 9 * * *", timezone="UTC", actor=owner)
        agent.refresh_from_db()
        assert agent.next_scheduled_iteration == dt.datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


# --- firing ---------------------------------------------------------------------------------
def test_two_fires_in_the_same_slot_make_one_iteration(agent, owner):
    with time_machine.travel(dt.datetime(2026, 1, 5, 5, 0, tzinfo=UTC), tick=False):
        scheduling.auto_learn_enable(agent, actor=owner, cron="0 */6 * * *")
    slot = dt.datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    first = scheduling.scheduled_fire(agent.pk, now=slot + dt.timedelta(seconds=1))
    # A second beat process, a redelivery, a late worker, a worker whose clock runs 20 s early.
    second = scheduling.scheduled_fire(str(agent.pk), now=slot + dt.timedelta(seconds=2))
    LearningIteration.objects.filter(pk=first.pk).update(status=IterationStatus.SUCCEEDED)
    third = scheduling.scheduled_fire(agent.pk, now=slot + dt.timedelta(minutes=3))
    fourth = scheduling.scheduled_fire(agent.pk, now=slot - dt.timedelta(seconds=20))
    assert first.pk == second.pk == third.pk == fourth.pk
    iterations = LearningIteration.objects.filter(agent=agent)
    assert iterations.count() == 1
    iteration = iterations.get()
    assert iteration.trigger == "schedule" and iteration.idempotency_key == "schedule:2026-01-05T06:00Z"
    agent.refresh_from_db()
    assert agent.next_scheduled_iteration == dt.datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    assert ActivityLog.objects.filter(agent=agent, event="scheduled_iteration_queued").count() == 1


def test_the_next_slot_makes_the_next_iteration(agent, owner):
    with time_machine.travel(dt.datetime(2026, 1, 5, 5, 0, tzinfo=UTC), tick=False):
        scheduling.auto_learn_enable(agent, actor=owner, cron="0 */6 * * *")
    first = scheduling.scheduled_fire(agent.pk, now=dt.datetime(2026, 1, 5, 6, 0, 1, tzinfo=UTC))
    # Still queued at the next slot: the slot joins it (one active iteration per agent), logged.
    joined = scheduling.scheduled_fire(agent.pk, now=dt.datetime(2026, 1, 5, 12, 0, 1, tzinfo=UTC))
    assert joined.pk == first.pk
    assert ActivityLog.objects.filter(agent=agent, event="scheduled_iteration_skipped").count() == 1
    LearningIteration.objects.filter(pk=first.pk).update(status=IterationStatus.SUCCEEDED)
    with time_machine.travel(dt.datetime(2026, 1, 5, 18, 0, 2, tzinfo=UTC), tick=False):
        second = scheduled_iteration_task(str(agent.pk))  # the task, called directly
    assert second != first.pk
    assert LearningIteration.objects.get(pk=second).idempotency_key == "schedule:2026-01-05T18:00Z"
    agent.refresh_from_db()
    assert agent.next_scheduled_iteration == dt.datetime(2026, 1, 6, 0, 0, tzinfo=UTC)


def test_fire_for_an_agent_with_auto_learn_off_does_nothing_and_disables_the_row(agent, owner, frozen):
    scheduling.auto_learn_enable(agent, actor=owner, cron="0 9 * * *")
    TradingAgent.objects.filter(pk=agent.pk).update(auto_learn_enabled=False)  # columns win
    assert scheduling.scheduled_fire(agent.pk) is None
    assert not LearningIteration.objects.exists()
    assert not row_of(agent).enabled


def test_fire_for_a_deleted_agent_removes_its_row(agent, owner, frozen):
    scheduling.auto_learn_enable(agent, actor=owner, cron="0 9 * * *")
    agent_id = agent.pk
    TradingAgent.objects.filter(pk=agent_id).delete()  # bypassing agent_delete
    assert scheduled_iteration_task(str(agent_id)) is None
    assert not PeriodicTask.objects.filter(name=f"agent:{agent_id}:learn").exists()
    assert scheduling.scheduled_fire("not-a-uuid") is None


# --- reconcile ------------------------------------------------------------------------------
def test_reconcile_reverts_an_operators_edits_of_the_row(owner, instrument, frozen):
    agents = [make_agent(owner=owner, instrument=instrument, name=f"a{i}") for i in range(4)]
    for a in agents:
        scheduling.auto_learn_enable(a, actor=owner, cron="0 9 * * *", timezone="Europe/Paris")
    scheduling.auto_learn_disable(agents[3], actor=owner)
    other = CrontabSchedule.objects.create(minute="*/5", timezone="UTC")
    interval = IntervalSchedule.objects.create(every=10, period="seconds")
    PeriodicTask.objects.filter(name=f"agent:{agents[0].pk}:learn").update(crontab=other)
    PeriodicTask.objects.filter(name=f"agent:{agents[1].pk}:learn").update(
        args=json.dumps([str(agents[2].pk)]), task="agents.tasks.something_else", queue="iterations")
    PeriodicTask.objects.filter(name=f"agent:{agents[2].pk}:learn").update(
        crontab=None, interval=interval, expires=T0)
    PeriodicTask.objects.filter(name=f"agent:{agents[3].pk}:learn").update(enabled=True)  # agent is off
    before = PeriodicTasks.last_change()

    with time_machine.travel(T0 + dt.timedelta(minutes=1), tick=False):
        summary = reconcile_schedules_task()
        assert PeriodicTasks.last_change() == T0 + dt.timedelta(minutes=1) > before

    assert summary["updated"] == 4 and summary["created"] == 0 and summary["deleted"] == 0
    shared = row_of(agents[0]).crontab_id
    for a in agents:
        row = row_of(a)
        assert (row.crontab_id, row.interval_id, row.task, row.queue, row.expires) == (
            shared, None, "agents.tasks.scheduled_iteration_task", "default", None)
        assert json.loads(row.args) == [str(a.pk)]
        assert row.enabled is (a is not agents[3])
    assert (row_of(agents[0]).crontab.hour, str(row_of(agents[0]).crontab.timezone)) == ("9", "Europe/Paris")
    assert reconcile_schedules_task()["changed"] == 0  # now consistent


def test_reconcile_repoints_rows_when_the_shared_crontab_itself_was_edited(agent, owner, frozen):
    scheduling.auto_learn_enable(agent, actor=owner, cron="0 9 * * *")
    CrontabSchedule.objects.filter(pk=row_of(agent).crontab_id).update(hour="10")
    assert scheduling.schedules_reconcile()["updated"] == 1
    assert row_of(agent).crontab.hour == "9"


def test_reconcile_creates_missing_rows_and_removes_orphans(owner, instrument, frozen):
    kept = make_agent(owner=owner, instrument=instrument, name="kept")
    scheduling.auto_learn_enable(kept, actor=owner, cron="0 9 * * *")
    PeriodicTask.objects.filter(name=f"agent:{kept.pk}:learn").delete()
    crontab = CrontabSchedule.objects.get()
    PeriodicTask.objects.create(name="agent:00000000-0000-0000-0000-000000000000:learn",
                                task="agents.tasks.scheduled_iteration_task", crontab=crontab)
    unrelated = PeriodicTask.objects.create(name="nightly-report", task="x", crontab=crontab)
    summary = scheduling.schedules_reconcile()
    assert (summary["created"], summary["deleted"]) == (1, 1)
    assert set(PeriodicTask.objects.values_list("name", flat=True)) == {f"agent:{kept.pk}:learn", unrelated.name}
    assert row_of(kept).enabled


def test_reconcile_fixes_next_scheduled_iteration(owner, instrument, frozen):
    on = make_agent(owner=owner, instrument=instrument, name="on")
    off = make_agent(owner=owner, instrument=instrument, name="off")
    scheduling.auto_learn_enable(on, actor=owner, cron="0 9 * * *")
    TradingAgent.objects.filter(pk=on.pk).update(next_scheduled_iteration=T0 - dt.timedelta(days=2))
    TradingAgent.objects.filter(pk=off.pk).update(next_scheduled_iteration=T0)
    assert scheduling.schedules_reconcile()["next_fixed"] == 2
    on.refresh_from_db()
    off.refresh_from_db()
    assert on.next_scheduled_iteration == dt.datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert off.next_scheduled_iteration is None


def _reconcile_queries():
    with CaptureQueriesContext(connection) as ctx:
        scheduling.schedules_reconcile()
    return len(ctx.captured_queries)


def test_reconcile_query_count_does_not_grow_with_agents(owner, instrument, frozen):
    agents = [make_agent(owner=owner, instrument=instrument, name=f"q{i}") for i in range(12)]
    scheduling.auto_learn_enable_bulk(TradingAgent.objects.filter(pk__in=[a.pk for a in agents[:3]]),
                                      cron="0 9 * * *")
    small = _reconcile_queries()
    scheduling.auto_learn_enable_bulk(TradingAgent.objects.all(), cron="0 9 * * *")
    assert _reconcile_queries() == small <= 5
    # Drift everywhere: still a fixed number of bulk statements.
    PeriodicTask.objects.update(enabled=False)
    with CaptureQueriesContext(connection) as ctx:
        assert scheduling.schedules_reconcile()["updated"] == 12
    assert len(ctx.captured_queries) <= 10


# --- bulk -----------------------------------------------------------------------------------
def test_bulk_enable_shares_one_crontab_and_tells_beat(owner, instrument):
    agents = [make_agent(owner=owner, instrument=instrument, name=f"b{i}") for i in range(6)]
    with time_machine.travel(T0, tick=False):
        scheduling.auto_learn_enable(agents[0], actor=owner, cron="*/5 * * * *")  # an existing row to update
        before = PeriodicTasks.last_change()
    with time_machine.travel(T0 + dt.timedelta(minutes=2), tick=False):
        count = scheduling.auto_learn_enable_bulk(TradingAgent.objects.all(), cron="0 */6 * * *", actor=owner)
        assert PeriodicTasks.last_change() == T0 + dt.timedelta(minutes=2) > before
    assert count == 6
    rows = PeriodicTask.objects.filter(name__endswith=":learn")
    assert rows.count() == 6 and rows.filter(enabled=True).count() == 6
    assert rows.values("crontab_id").distinct().count() == 1
    assert rows.first().crontab.hour == "*/6"
    assert set(TradingAgent.objects.values_list("next_scheduled_iteration", flat=True)) == {
        dt.datetime(2026, 1, 5, 12, 0, tzinfo=UTC)}
    assert ActivityLog.objects.filter(event="auto_learn_enabled").count() == 7
    assert scheduling.schedules_reconcile()["changed"] == 0

    with time_machine.travel(T0 + dt.timedelta(minutes=4), tick=False):
        assert scheduling.auto_learn_disable_bulk(TradingAgent.objects.filter(name__in=["b1", "b2"])) == 2
        assert PeriodicTasks.last_change() == T0 + dt.timedelta(minutes=4)
    assert rows.filter(enabled=False).count() == 2
    assert scheduling.schedules_reconcile()["changed"] == 0


def test_bulk_enable_with_a_bad_cron_changes_nothing(agent):
    before = snapshot(agent)
    with pytest.raises(ValidationFailed) as caught:
        scheduling.auto_learn_enable_bulk(TradingAgent.objects.all(), cron="0 0 * 13 *")
    assert "field 4 (month_of_year)" in caught.value.errors["cron"]
    assert snapshot(agent) == before


# --- API ------------------------------------------------------------------------------------
def base(agent):
    return f"/api/learning-agents/{agent.pk}"


def test_api_schedule_enable_disable(api, agent, frozen):
    resp = api.put(base(agent) + "/schedule", {"cron": "0 9 * * 1-5", "timezone": "Europe/London"}, format="json")
    assert resp.status_code == 200, resp.data
    assert resp.data == {
        "auto_learn_enabled": False, "learning_schedule": "0 9 * * 1-5", "schedule_timezone": "Europe/London",
        "description": "At 09:00, Monday through Friday (Europe/London)", "next_scheduled_iteration": None,
    }
    resp = api.post(base(agent) + "/auto-learn/enable/")
    assert resp.status_code == 200, resp.data
    assert resp.data["auto_learn_enabled"] is True
    assert resp.data["next_scheduled_iteration"] == "2026-01-05T09:00:00Z"
    assert row_of(agent).enabled
    assert api.get(base(agent) + "/schedule/").data["auto_learn_enabled"] is True
    assert api.get(base(agent)).data["next_scheduled_iteration"] == "2026-01-05T09:00:00Z"

    resp = api.post(base(agent) + "/auto-learn/enable", {"cron": "*/30 * * * *"}, format="json")
    assert resp.data["learning_schedule"] == "*/30 * * * *" and resp.data["schedule_timezone"] == "UTC"
    assert resp.data["next_scheduled_iteration"] == "2026-01-05T08:30:00Z"

    resp = api.post(base(agent) + "/auto-learn/disable")
    assert resp.status_code == 200
    assert resp.data["auto_learn_enabled"] is False and resp.data["next_scheduled_iteration"] is None
    assert not row_of(agent).enabled


@pytest.mark.parametrize(
    ("path", "method", "body", "field", "message"),
    [
        ("/schedule", "put", {"cron": "0 25 * * *"}, "cron", "field 2 (hour) '25' is out of range 0-23"),
        ("/schedule", "put", {"cron": "* * *"}, "cron", "expected five fields"),
        ("/schedule", "put", {"cron": ""}, "cron", "must not be blank"),
        ("/schedule", "put", {"timezone": "UTC"}, "cron", "required"),
        ("/schedule", "put", {"cron": "0 9 * * *", "timezone": "Mars/Base"}, "timezone",
         "unknown time zone 'Mars/Base'"),
        ("/auto-learn/enable", "post", {}, "learning_schedule", "set a schedule first"),
        ("/auto-learn/enable", "post", {"cron": "0 0 * * 9"}, "cron", "field 5 (day_of_week) '9'"),
    ],
)
def test_api_bad_input_is_400_naming_the_field(api, agent, path, method, body, field, message):
    before = snapshot(agent)
    resp = getattr(api, method)(base(agent) + path, body, format="json")
    assert resp.status_code == 400
    assert field in resp.data, resp.data
    assert message in str(resp.data[field][0])
    assert snapshot(agent) == before


def test_api_another_owners_agent_is_404(api, instrument):
    theirs = make_agent(owner=UserFactory(username="bob"), instrument=instrument, name="theirs")
    assert api.put(base(theirs) + "/schedule", {"cron": "0 9 * * *"}, format="json").status_code == 404
    assert api.get(base(theirs) + "/schedule").status_code == 404
    assert api.post(base(theirs) + "/auto-learn/enable", {"cron": "0 9 * * *"}, format="json").status_code == 404
    assert api.post(base(theirs) + "/auto-learn/disable").status_code == 404
    theirs.refresh_from_db()
    assert not theirs.auto_learn_enabled and theirs.learning_schedule == ""
    assert not PeriodicTask.objects.exists()


def test_api_delete_removes_the_row(api, agent, owner):
    scheduling.auto_learn_enable(agent, actor=owner, cron="0 9 * * *")
    assert api.delete(base(agent)).status_code == 204
    assert not PeriodicTask.objects.filter(name__endswith=":learn").exists()


def test_beats_own_entry_fires_at_next_scheduled_iteration(agent, owner):
    from django_celery_beat.schedulers import ModelEntry

    start = dt.datetime(2026, 7, 1, 7, 30, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        scheduling.auto_learn_enable(agent, actor=owner, cron="0 9 * * *", timezone="Europe/London")
        agent.refresh_from_db()
        due, wait = ModelEntry(row_of(agent)).is_due()
    assert not due and wait == (agent.next_scheduled_iteration - start).total_seconds() == 1800
    with time_machine.travel(agent.next_scheduled_iteration, tick=False):
        due, _wait = ModelEntry(row_of(agent)).is_due()
    assert due
