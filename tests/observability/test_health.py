"""GET /health and `check_health` under a frozen clock: 200 when every part is healthy, 503
naming each failing part (database, broker, stale beat, no worker)."""

import datetime as dt
import json
import time
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import OperationalError

from agents.models import IterationStatus, LearningIteration
from alerts import heartbeat
from alerts.models import Heartbeat
from config.observability import health
from tests.factories import make_agent

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def alive(now, *, beat=True, workers=("lab@host-a",)):
    if beat:
        heartbeat.heartbeat_record(heartbeat.BEAT, now=now)
    for name in workers:
        heartbeat.worker_record(name, source="timer", now=now)


def get_health(client, path="/health"):
    response = client.get(path)
    return response.status_code, response.json()


def test_healthy_lab_answers_200_with_every_part(client, clock, settings):
    clock(T0)
    alive(T0 - dt.timedelta(seconds=30))
    agent = make_agent()
    LearningIteration.objects.create(agent=agent, number=1, trigger="manual", status=IterationStatus.QUEUED)
    status, body = get_health(client)
    assert status == 200, body
    assert (body["status"], body["healthy"], body["failing"]) == ("ok", True, [])
    assert body["database"]["ok"] and body["broker"]["ok"]
    assert body["broker"]["transport"] == settings.CELERY_BROKER_URL.split("://")[0]
    assert body["beat"]["age_seconds"] == 30.0 and body["beat"]["limit_seconds"] == 180
    assert body["workers"]["alive"] == 1 and body["workers"]["state"] == "ok"
    assert body["iterations"] == {"running": 0, "queued": 1}
    assert "members" not in body["workers"]  # host names stay out of the public body
    assert get_health(client, "/health/")[0] == 200


def test_database_down_is_503_naming_the_database(client, clock):
    clock(T0)
    alive(T0)
    with mock.patch.object(health.connection, "ensure_connection",
                           side_effect=OperationalError("could not connect to server at 10.0.0.5: password xyz")):
        status, body = get_health(client)
    assert status == 503
    assert "database" in body["failing"] and body["database"] == {"ok": False, "error": "OperationalError"}
    assert "10.0.0.5" not in json.dumps(body) and "xyz" not in json.dumps(body)


def test_unreachable_broker_is_503_naming_the_broker_within_the_timeout(client, clock, settings):
    clock(T0)
    alive(T0)
    settings.CELERY_BROKER_URL = "redis://:broker-password@127.0.0.1:1/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    settings.LAB_HEALTH_TIMEOUT_SECONDS = 1.0
    started = time.monotonic()
    status, body = get_health(client)
    assert time.monotonic() - started < 10
    assert status == 503 and body["failing"] == ["broker"]
    assert body["broker"]["ok"] is False and body["broker"]["transport"] == "redis"
    assert "broker-password" not in json.dumps(body)


def test_a_stale_beat_is_503_naming_beat(client, clock):
    clock(T0)
    alive(T0)
    clock(T0 + dt.timedelta(seconds=181))
    heartbeat.worker_record("lab@host-a", source="timer")  # workers still answer
    status, body = get_health(client)
    assert status == 503 and body["failing"] == ["beat"]
    assert body["beat"]["state"] == "stale" and body["beat"]["age_seconds"] == 181.0


def test_beat_within_the_limit_is_healthy(client, clock):
    clock(T0)
    alive(T0)
    clock(T0 + dt.timedelta(seconds=180))
    assert get_health(client)[0] == 200


def test_no_worker_is_503_naming_workers(client, clock):
    clock(T0)
    alive(T0, workers=())
    status, body = get_health(client)
    assert status == 503 and body["failing"] == ["workers"]
    assert body["workers"]["state"] == "never_seen" and body["workers"]["alive"] == 0


def test_every_worker_silent_is_503_even_if_one_was_seen_once(client, clock):
    clock(T0)
    alive(T0, workers=("a@h1", "b@h2"))
    clock(T0 + dt.timedelta(seconds=200))
    heartbeat.heartbeat_record(heartbeat.BEAT)
    heartbeat.worker_record("b@h2", source="timer")
    assert get_health(client)[1]["workers"]["alive"] == 1
    clock(T0 + dt.timedelta(seconds=390))
    heartbeat.heartbeat_record(heartbeat.BEAT)
    status, body = get_health(client)
    assert status == 503 and body["failing"] == ["workers"] and body["workers"]["state"] == "stale"


def test_a_warm_shutdown_of_the_last_worker_is_unhealthy_at_once(client, clock):
    clock(T0)
    alive(T0)
    heartbeat.worker_stopped("lab@host-a")
    status, body = get_health(client)
    assert status == 503 and body["workers"]["state"] == "stopped"


def test_scope_web_checks_only_database_and_broker(client, clock):
    clock(T0)  # no heartbeat at all: the scheduler is down, the web can still serve
    status, body = get_health(client, "/health?scope=web")
    assert status == 200 and body["scope"] == "web" and "beat" not in body


def test_health_needs_no_login_and_only_get(client):
    assert client.post("/health").status_code == 405


def test_the_report_for_the_dashboard_lists_each_worker(clock):
    clock(T0)
    alive(T0 - dt.timedelta(seconds=10), workers=("a@h1", "b@h2"))
    heartbeat.worker_record("old@h3", source="timer", now=T0 - dt.timedelta(seconds=500))
    report = health.health_report(check_alerts=False)
    members = {m["name"]: m for m in report["workers"]["members"]}
    assert set(members) == {"a@h1", "b@h2", "old@h3"}
    assert members["a@h1"]["ok"] and not members["old@h3"]["ok"]
    assert report["workers"]["alive"] == 2 and report["healthy"]


def test_check_health_command_exit_codes(clock, capsys):
    clock(T0)
    alive(T0)
    call_command("check_health")
    assert "lab health: OK" in capsys.readouterr().out
    clock(T0 + dt.timedelta(seconds=400))
    with pytest.raises(SystemExit) as exited:
        call_command("check_health", "--json")
    assert exited.value.code == 1
    report = json.loads(capsys.readouterr().out)
    assert report["failing"] == ["beat", "workers"]


def test_check_health_quiet_prints_nothing_when_healthy(clock, capsys):
    clock(T0)
    alive(T0)
    call_command("check_health", "--quiet")
    assert capsys.readouterr().out == ""


def test_heartbeats_never_move_backwards(clock):
    clock(T0)
    heartbeat.heartbeat_record(heartbeat.BEAT, now=T0)
    heartbeat.heartbeat_record(heartbeat.BEAT, now=T0 - dt.timedelta(seconds=5))
    assert Heartbeat.objects.get(component="beat").last_seen == T0
