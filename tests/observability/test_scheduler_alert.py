"""The lab notices its own scheduler dying: one CRITICAL SYSTEM alert per outage through the
normal notification path, one INFO recovery notice when it comes back; and who records the
heartbeats (beat as it publishes, workers from their main process and the heartbeat task)."""

import datetime as dt

import pytest

from alerts import heartbeat
from alerts.models import AgentAlert, AlertType, Heartbeat, Severity
from config.observability import health

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
LIMIT = 180


@pytest.fixture
def check(django_capture_on_commit_callbacks, notified):
    """Run the check as the web process does; notifications go out after commit."""

    def run(components=heartbeat.COMPONENTS):
        with django_capture_on_commit_callbacks(execute=True):
            return heartbeat.scheduler_health_check(components=components)

    return run


def at(clock, seconds):
    return clock(T0 + dt.timedelta(seconds=seconds))


def system_alerts(**filters):
    return list(AgentAlert.objects.filter(agent__isnull=True, alert_type=AlertType.SYSTEM, **filters).order_by("id"))


def test_stale_beat_alerts_once_and_recovers_once(clock, check, notified):
    at(clock, 0)
    heartbeat.heartbeat_record("beat")
    heartbeat.worker_record("w@h", source="timer")
    for second in (60, 120, 180):  # within the limit: nothing
        at(clock, second)
        heartbeat.worker_record("w@h", source="timer")
        assert check()["beat"]["ok"] is (second <= LIMIT)
    assert system_alerts() == []

    for second in (181, 240, 600, 3600):  # stale: exactly one alert, however often we look
        at(clock, second)
        heartbeat.worker_record("w@h", source="timer")
        status = check()
        assert status["beat"]["ok"] is False and status["beat"]["alerted"] is True
    [critical] = system_alerts()
    assert (critical.severity, critical.fingerprint, critical.occurrence_count) == (
        Severity.CRITICAL, "scheduler:beat", 1)
    assert "Celery beat silent for 181s" in critical.message and "limit 180s" in critical.message
    assert critical.details["component"] == "beat"
    assert notified == [critical.pk]  # through the normal channels, once

    at(clock, 3700)  # beat is back
    heartbeat.heartbeat_record("beat")
    heartbeat.worker_record("w@h", source="timer")
    for _ in range(3):
        status = check()
        assert status["beat"]["ok"] and status["beat"]["alerted"] is False
    critical.refresh_from_db()
    assert critical.acknowledged and critical.acknowledged_by is None  # resolved
    [_, recovery] = system_alerts()
    assert recovery.severity == Severity.INFO and recovery.fingerprint.startswith("scheduler:beat:recovered:")
    assert "Celery beat is back" in recovery.message
    assert notified == [critical.pk, recovery.pk]


def test_a_second_outage_is_a_new_alert_and_a_new_recovery(clock, check, notified):
    at(clock, 0)
    heartbeat.heartbeat_record("beat")
    heartbeat.worker_record("w@h", source="timer")
    for start in (0, 1000):
        at(clock, start + 200)
        heartbeat.worker_record("w@h", source="timer")
        check()
        at(clock, start + 1000)
        heartbeat.heartbeat_record("beat")
        heartbeat.worker_record("w@h", source="timer")
        check()
    kinds = [(a.severity, a.acknowledged) for a in system_alerts()]
    assert kinds == [(Severity.CRITICAL, True), (Severity.INFO, False), (Severity.CRITICAL, True),
                     (Severity.INFO, False)]
    assert len(notified) == 4


def test_no_worker_alerts_once_and_recovers(clock, check, notified):
    at(clock, 0)
    heartbeat.heartbeat_record("beat")
    heartbeat.worker_record("w@h", source="timer")
    at(clock, 200)
    heartbeat.heartbeat_record("beat")
    check()
    check()
    [critical] = system_alerts()
    assert critical.fingerprint == "scheduler:workers" and "No Celery worker" not in critical.message
    assert critical.message.startswith("Celery workers silent for 200s")
    at(clock, 230)
    heartbeat.heartbeat_record("beat")
    heartbeat.worker_record("w2@h", source="ready")
    check()
    assert [a.severity for a in system_alerts()] == [Severity.CRITICAL, Severity.INFO]
    assert len(notified) == 2


def test_a_component_never_seen_gets_a_grace_period_then_one_alert(clock, check):
    at(clock, 0)
    status = check()  # a fresh install: unhealthy, but nobody has had time to start yet
    assert status["beat"]["state"] == "never_seen" and not status["beat"]["alerted"]
    at(clock, 170)
    check()
    assert system_alerts() == []
    at(clock, 181)
    check()
    messages = sorted(a.message for a in system_alerts())
    assert len(messages) == 2 and all("has never reported" in m for m in messages)


def test_two_checkers_racing_raise_one_alert(clock, check):
    at(clock, 0)
    heartbeat.heartbeat_record("beat")
    heartbeat.worker_record("w@h", source="timer")
    at(clock, 300)
    heartbeat.worker_record("w@h", source="timer")
    stale_row = Heartbeat.objects.get(component="beat")
    part = heartbeat.scheduler_status()["beat"]
    assert heartbeat._raise_stale("beat", stale_row, part, T0) is True
    assert heartbeat._raise_stale("beat", stale_row, part, T0) is False  # the loser of the flag
    assert len(system_alerts()) == 1


def test_the_health_view_runs_the_check(client, clock, notified, django_capture_on_commit_callbacks):
    at(clock, 0)
    heartbeat.heartbeat_record("beat")
    heartbeat.worker_record("w@h", source="timer")
    at(clock, 400)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.get("/health").status_code == 503
        client.get("/health")
    assert len(system_alerts(severity=Severity.CRITICAL)) == 2 and len(notified) == 2


def test_check_health_can_only_read(clock):
    at(clock, 0)
    heartbeat.heartbeat_record("beat")
    at(clock, 400)
    assert not health.health_report(check_alerts=False)["healthy"]
    assert system_alerts() == [] and not Heartbeat.objects.filter(alerted=True).exists()


# --- who records the heartbeats ------------------------------------------------------------
def test_beat_records_its_heartbeat_at_start_and_when_it_publishes(clock, monkeypatch):
    monkeypatch.setattr(heartbeat, "close_old_connections", lambda: None)  # keep the test's connection
    monkeypatch.setitem(heartbeat._state, "in_beat", False)
    monkeypatch.setitem(heartbeat._state, "last_beat_write", 0.0)
    at(clock, 0)
    heartbeat._on_publish(sender="agents.tasks.continuous_tick_task")  # not beat: the web publishing
    assert not Heartbeat.objects.filter(component="beat").exists()
    heartbeat._on_beat_init()
    assert Heartbeat.objects.get(component="beat").last_seen == T0
    at(clock, 60)
    monkeypatch.setitem(heartbeat._state, "last_beat_write", 0.0)
    heartbeat._on_publish(sender="alerts.heartbeat.heartbeat_task")
    row = Heartbeat.objects.get(component="beat")
    assert row.last_seen == T0 + dt.timedelta(seconds=60) and row.details["last"] == "alerts.heartbeat.heartbeat_task"


def test_the_heartbeat_task_records_the_worker_that_ran_it(clock):
    at(clock, 0)
    heartbeat.heartbeat_task.push_request(hostname="lab@host-b")
    try:
        heartbeat.heartbeat_task.run()
    finally:
        heartbeat.heartbeat_task.pop_request()
    row = Heartbeat.objects.get(component="worker:lab@host-b")
    assert row.last_seen == T0 and row.details["last_task_at"] == T0.isoformat()
    assert Heartbeat.objects.get(component="workers").last_seen == T0
    at(clock, 30)
    heartbeat.worker_record("lab@host-b", source="timer")  # the timer keeps the task's time
    assert Heartbeat.objects.get(component="worker:lab@host-b").details["last_task_at"] == T0.isoformat()


def test_the_worker_thread_records_the_worker_and_watches_beat(clock, monkeypatch, notified):
    monkeypatch.setattr("django.db.connections.close_all", lambda: None)  # keep the test's connection
    at(clock, 0)
    heartbeat.heartbeat_record("beat")
    at(clock, 500)
    thread = heartbeat.WorkerHeartbeatThread("lab@host-c", interval=30)
    thread.beat_once()
    assert Heartbeat.objects.get(component="worker:lab@host-c").last_seen == T0 + dt.timedelta(seconds=500)
    [alert] = system_alerts()
    assert alert.fingerprint == "scheduler:beat"  # a worker notices a dead beat; never "no worker"


def test_worker_ready_and_shutdown(clock, monkeypatch):
    monkeypatch.setattr("django.db.connections.close_all", lambda: None)
    started = []
    monkeypatch.setattr(heartbeat.WorkerHeartbeatThread, "start", lambda self: started.append(self))
    at(clock, 0)

    class Consumer:
        hostname = "lab@host-d"

    heartbeat._on_worker_ready(sender=Consumer())
    assert Heartbeat.objects.get(component="worker:lab@host-d").details["source"] == "ready"
    assert started and started[0].hostname == "lab@host-d"
    heartbeat._on_worker_shutdown(sender=Consumer())
    assert started[0].stopping.is_set()
    assert Heartbeat.objects.get(component="worker:lab@host-d").details["stopped"] is True
