"""GET /metrics: access rules, the exposition parses with prometheus-client's own parser, the
counters move after real work, the scrape-time gauges, and multi-process merging."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents.models import Refinement, RefinementStatus
from agents.services import decisions, learning
from alerts import services as alert_services
from alerts.models import AlertType, Delivery, DeliveryStatus, Severity
from config.observability import metrics
from tests.alerts import helpers as hooks
from tests.factories import UserFactory, make_agent, make_claude_agent_without_key
from tests.fake_anthropic import FakeAnthropic, api_error, message, sma_candidates
from tests.observability.helpers import Scrape, scrape
from tests.processes import purge_filesystem_broker

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


# --- access --------------------------------------------------------------------------------
def test_localhost_may_scrape_by_default(client):
    assert "lab_scrape_ok" in scrape(client).families


def test_refused_from_another_address_without_a_token(client):
    response = client.get("/metrics", REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 403
    assert b"lab_" not in response.content


def test_with_a_token_configured_a_stranger_gets_401_and_the_right_token_gets_in(client, settings):
    settings.LAB_METRICS_TOKEN = "scrape-token-0123456789"
    stranger = {"REMOTE_ADDR": "203.0.113.9"}
    refused = client.get("/metrics", **stranger)
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-token", **stranger).status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Basic c2NyYXBlOng=", **stranger).status_code == 401
    assert scrape(client, HTTP_AUTHORIZATION="Bearer scrape-token-0123456789", **stranger).families


def test_the_allow_list_takes_networks(client, settings):
    settings.LAB_METRICS_ALLOW_IPS = ["10.0.0.0/8", "2001:db8::/32"]
    assert scrape(client, REMOTE_ADDR="10.20.30.40").families
    assert scrape(client, REMOTE_ADDR="2001:db8::5").families
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="not-an-ip").status_code == 403


def test_openmetrics_is_served_when_asked(client):
    response = client.get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().rstrip().endswith("# EOF")


# --- counters ------------------------------------------------------------------------------
def test_counters_move_after_a_real_iteration(client, django_capture_on_commit_callbacks, settings):
    agent = make_agent(candidates_per_iteration=3)
    before = scrape(client)
    with django_capture_on_commit_callbacks(execute=True):
        iteration, _ = learning.iteration_run_now(agent, trigger="manual")
        failing, _ = learning.iteration_run_now(make_claude_agent_without_key(settings), trigger="api")
    assert (iteration.status, failing.status) == ("succeeded", "failed")
    after = scrape(client)

    def moved(name, **labels):
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved("lab_iterations_finished_total", status="succeeded", trigger="manual") == 1
    assert moved("lab_iterations_finished_total", status="failed", trigger="api") == 1
    assert moved("lab_iteration_duration_seconds_count", status="succeeded") == 1
    assert moved("lab_iteration_duration_seconds_sum", status="succeeded") > 0
    # current version + 3 candidates, and the failing run's current version before its refiner failed
    assert moved("lab_backtest_duration_seconds_count") == 1 + 3 + 1
    assert after.families["lab_iterations_finished"].type == "counter"
    assert after.families["lab_iteration_duration_seconds"].type == "histogram"


def test_llm_calls_and_tokens_by_outcome(client, settings):
    settings.ANTHROPIC_API_KEY = "sk-ant-test-metrics-0000"
    settings.ANTHROPIC_MAX_RETRIES = 0
    before = scrape(client)
    with FakeAnthropic((200, message(sma_candidates([(10, 30), (12, 40)]), input_tokens=1000,
                                     output_tokens=250))) as fake:
        settings.ANTHROPIC_BASE_URL = fake.url
        learning.iteration_run_now(make_agent(refiner="claude", candidates_per_iteration=2), trigger="manual")
    with FakeAnthropic(api_error(401, "authentication_error", "invalid x-api-key")) as fake:
        settings.ANTHROPIC_BASE_URL = fake.url
        failed, _ = learning.iteration_run_now(make_agent(refiner="claude"), trigger="manual")
    assert failed.status == "failed"
    after = scrape(client)
    assert after.value("lab_llm_calls_total", outcome="auth_error") - before.value(
        "lab_llm_calls_total", outcome="auth_error") == 1
    assert after.value("lab_llm_calls_total", outcome="success") - before.value(
        "lab_llm_calls_total", outcome="success") == 1
    for direction, tokens in (("input", 1000), ("output", 250)):
        labels = {"direction": direction, "outcome": "success"}
        assert after.value("lab_llm_tokens_total", **labels) - before.value("lab_llm_tokens_total", **labels) == tokens


def test_refinement_decisions_are_counted_when_committed(client, django_capture_on_commit_callbacks):
    agent = make_agent(candidates_per_iteration=3)
    iteration, _ = learning.iteration_run_now(agent, trigger="manual")
    user = agent.owner
    first, second, third = Refinement.objects.filter(iteration=iteration).order_by("id")
    before = scrape(client)
    with django_capture_on_commit_callbacks(execute=True):
        decisions.refinement_approve(first, actor=user)
        decisions.refinement_approve(second, actor=user)
        decisions.refinement_reject(third, actor=user, reason="no")
        decisions.refinements_apply(agent, actor=user)
    after = scrape(client)
    for decision, count in (("approved", 2), ("rejected", 1), ("applied", 1), ("superseded", 1)):
        moved = after.value("lab_refinement_decisions_total", decision=decision, mode="manual") - before.value(
            "lab_refinement_decisions_total", decision=decision, mode="manual")
        assert moved == count, decision
    assert Refinement.objects.filter(status=RefinementStatus.SUPERSEDED).count() == 1


def test_alerts_and_deliveries_are_counted(client, settings, django_capture_on_commit_callbacks, monkeypatch):
    monkeypatch.setattr("alerts.notify.alert_notify", lambda alert_id: None)
    hooks.allow_private_targets(settings)
    agent = hooks.make_owner_agent()
    before = scrape(client)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            alert_services.alert_raise(agent, alert_type=AlertType.ERROR, severity=Severity.WARNING, message="boom",
                                       fingerprint="f")
    receivers = hooks.Receivers()
    try:
        channel = hooks.webhook_channel(agent.owner, receivers(200).url())
        delivery = Delivery.objects.create(alert=agent.alerts.get(), channel=channel)
        hooks.run_task(delivery.pk)
    finally:
        receivers.close()
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SUCCEEDED
    after = scrape(client)

    def moved(name, **labels):
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved("lab_alerts_raised_total", type="ERROR", severity="WARNING", kind="new") == 1
    assert moved("lab_alerts_raised_total", type="ERROR", severity="WARNING", kind="repeat") == 2
    assert moved("lab_deliveries_total", channel_kind="webhook", outcome="succeeded") == 1


# --- gauges --------------------------------------------------------------------------------
def test_lab_state_gauges_read_the_database(client):
    from agents.models import IterationStatus, LearningIteration, TradingAgent

    agents = [make_agent() for _ in range(2)]
    TradingAgent.objects.filter(pk=agents[1].pk).update(status="paper_trading", continuous_state="running")
    LearningIteration.objects.create(agent=agents[0], number=1, trigger="manual", status=IterationStatus.QUEUED)
    LearningIteration.objects.create(agent=agents[1], number=1, trigger="manual", status=IterationStatus.RUNNING)
    alert_services.system_alert_raise(alert_type=AlertType.SYSTEM, severity=Severity.CRITICAL, message="test",
                                      fingerprint="t")
    result = scrape(client)
    assert result.value("lab_agents", status="learning", continuous_state="stopped") == 1
    assert result.value("lab_agents", status="paper_trading", continuous_state="running") == 1
    assert result.value("lab_iterations_active", status="queued") == 1
    assert result.value("lab_iterations_active", status="running") == 1
    assert result.value("lab_alerts_open", severity="CRITICAL") == 1
    assert result.value("lab_scrape_ok", part="database") == 1
    assert result.families["lab_agents"].type == "gauge"


def test_heartbeat_ages(client, time_machine):
    import datetime as dt

    from alerts import heartbeat

    t0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    time_machine.move_to(t0, tick=False)
    heartbeat.heartbeat_record("beat", now=t0 - dt.timedelta(seconds=42))
    heartbeat.worker_record("w@h", source="timer", now=t0 - dt.timedelta(seconds=7))
    result = scrape(client)
    assert result.value("lab_heartbeat_age_seconds", component="beat") == 42
    assert result.value("lab_heartbeat_age_seconds", component="workers") == 7


def test_queue_lengths_come_from_the_broker(client):
    from config.celery import app

    purge_filesystem_broker()
    before = scrape(client)
    assert before.value("lab_scrape_ok", part="broker") == 1
    try:
        for _ in range(2):
            app.send_task("alerts.heartbeat.heartbeat_task", queue="default")
        after = scrape(client)
    finally:
        purge_filesystem_broker()
    assert after.value("lab_celery_queue_length", queue="default") - before.value(
        "lab_celery_queue_length", queue="default") == 2
    assert {"queue": "iterations"} in [s.labels for s in after.families["lab_celery_queue_length"].samples]


def test_an_unreachable_broker_still_scrapes(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    settings.LAB_HEALTH_TIMEOUT_SECONDS = 1.0
    result = scrape(client)
    assert result.value("lab_scrape_ok", part="broker") == 0
    assert result.value("lab_scrape_ok", part="database") == 1
    assert "lab_celery_queue_length" not in result.families


# --- multi-process mode --------------------------------------------------------------------
CHILD = """
import os
from prometheus_client import values
assert values.ValueClass is not values.MutexValue
from config.observability import metrics
metrics.ITERATIONS.labels(status="succeeded", trigger="schedule").inc(3)
metrics.BACKTEST_SECONDS.observe(0.2)
"""


def test_multiprocess_mode_merges_the_values_of_other_processes(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "config.settings"}
    for _ in range(2):  # two processes (like two gunicorn or pool workers) with their own files
        subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=env, check=True, timeout=60)
    assert len(list(tmp_path.glob("counter_*.db"))) == 2
    from prometheus_client import generate_latest

    merged = Scrape(generate_latest(metrics.build_registry(path=str(tmp_path), lab_state=False)).decode())
    assert merged.value("lab_iterations_finished_total", status="succeeded", trigger="schedule") == 6
    assert merged.value("lab_backtest_duration_seconds_count") == 2


@pytest.mark.skipif(os.environ.get("LAB_METRICS_MULTIPROCESS", "1").lower() in ("0", "false", "no", "off"),
                    reason="multi-process metrics switched off")
def test_this_process_runs_in_multiprocess_mode_with_the_default_settings():
    # bootstrap sets PROMETHEUS_MULTIPROC_DIR under LAB_VAR_DIR before prometheus_client loads,
    # so a worker's counters reach the web's /metrics.
    from django.conf import settings

    assert metrics.MULTIPROCESS
    assert Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]) == settings.VAR_DIR / "prometheus"


def test_decisions_in_a_rolled_back_transaction_are_not_counted(client):
    from django.db import transaction

    agent = make_agent(candidates_per_iteration=1)
    iteration, _ = learning.iteration_run_now(agent, trigger="manual")
    refinement = Refinement.objects.get(iteration=iteration)
    before = scrape(client).value("lab_refinement_decisions_total", decision="approved", mode="manual")

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        decisions.refinement_approve(refinement, actor=UserFactory())
        raise Abort
    assert scrape(client).value("lab_refinement_decisions_total", decision="approved", mode="manual") == before


def test_a_worker_can_serve_its_hosts_metrics_on_a_port(settings, free_tcp_port):
    import urllib.request

    from config.observability import celery_signals

    settings.LAB_WORKER_METRICS_PORT = free_tcp_port
    metrics.ITERATIONS.labels(status="succeeded", trigger="continuous").inc(0)
    server = celery_signals._serve_worker_metrics(sender=None)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{free_tcp_port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    result = Scrape(text)
    assert "lab_iterations_finished" in result.families
    assert "lab_agents" not in result.families  # the lab-state gauges are the web's


def test_no_port_no_server(settings):
    from config.observability import celery_signals

    settings.LAB_WORKER_METRICS_PORT = 0
    assert celery_signals._serve_worker_metrics(sender=None) is None
