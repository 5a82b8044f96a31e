"""The broker down while work is enqueued, the database locked or dropped under a running
iteration, and two beat processes by mistake; against a real worker (and real beats).

Broker down (the decision): the iteration row is the source of truth, the broker message only a
nudge. When the message cannot be sent, the API, the scheduled fire and the continuous tick
still commit the iteration as `queued`, log an ERROR naming it, and answer normally (the API
202 with the queued iteration, whose status tells the truth). Nothing is half-queued: the row is
complete and no message exists. The reaper's requeue (beat, every 2 minutes) sends iterations
queued longer than LAB_REQUEUE_AFTER_SECONDS again; duplicates are harmless because the worker
claims an iteration with a conditional update. (Beat itself cannot send a due task while the
broker is down: Celery logs it and that fire is skipped; the continuous tick catches up at the
next minute, a cron slot at its next fire.)
"""

import datetime as dt
import logging
import re
import sqlite3
import threading
import time
import urllib.request

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from agents.models import IterationStatus, IterationTrigger, LearningIteration, Refinement
from agents.services import continuous, dispatch, reaper, scheduling
from agents.tasks import run_iteration_task
from config.celery import app
from tests.factories import make_agent
from tests.processes import celery_process, wait_for
from tests.reliability.helpers import (
    WORKER_ARGS,
    broker_unreachable,
    claude_message,
    nothing_running,
    on_sqlite,
    queued_messages,
    received_task_ids,
    sma,
    status_of,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker, pytest.mark.slow]
TASK = "agents.tasks.run_iteration_task"
CANDIDATES = [sma(10, 30), sma(12, 40)]


def error_lines(caplog, logger_name):
    return [r.getMessage() for r in caplog.records if r.name == logger_name and r.levelno >= logging.ERROR]


# --- broker down ---------------------------------------------------------------------------
def test_broker_down_leaves_iterations_queued_with_an_error_and_they_run_once_it_is_back(
    fresh_broker, client, caplog, tmp_path
):
    caplog.set_level(logging.INFO)
    by_api, by_schedule, by_loop = (make_agent(candidates_per_iteration=2) for _ in range(3))
    scheduling.auto_learn_enable(by_schedule, actor=by_schedule.owner, cron="* * * * *")
    continuous.continuous_start(by_loop, actor=by_loop.owner)
    client.force_login(by_api.owner)

    with broker_unreachable():
        policy = app.conf.task_publish_retry_policy
        attempts = policy["max_retries"] + 1
        # Each attempt may wait the connection timeout, and the retries their interval.
        publish_budget = attempts * app.conf.broker_connection_timeout + policy["max_retries"] * policy["interval_max"]

        started = time.monotonic()
        response = client.post(f"/api/learning-agents/{by_api.pk}/iterations")
        api_took = time.monotonic() - started
        assert response.status_code == 202, response.content
        assert response.json()["status"] == "queued"
        assert api_took < publish_budget + 2.0, (api_took, publish_budget)  # + the request itself
        again = client.post(f"/api/learning-agents/{by_api.pk}/iterations")  # the client retries
        assert again.status_code == 202 and again.json()["id"] == response.json()["id"]

        fired = scheduling.scheduled_fire(by_schedule.pk)  # what beat's task does on a worker
        assert scheduling.scheduled_fire(by_schedule.pk).pk == fired.pk  # same slot: same iteration
        summary = continuous.continuous_tick()
        assert summary["queued"] == 1

    errors = error_lines(caplog, "agents.services.dispatch")
    rows = {agent.pk: list(LearningIteration.objects.filter(agent=agent)) for agent in (by_api, by_schedule, by_loop)}
    assert all(len(found) == 1 for found in rows.values()), rows
    queued = [found[0] for found in rows.values()]
    assert {it.status for it in queued} == {IterationStatus.QUEUED}
    assert {it.trigger for it in queued} == {
        IterationTrigger.API, IterationTrigger.SCHEDULE, IterationTrigger.CONTINUOUS}
    assert rows[by_schedule.pk][0].idempotency_key.startswith("schedule:")
    for iteration in queued:  # a clear error, naming the iteration and what happens next
        assert any(f"iteration {iteration.pk} is queued but could not be handed to a worker" in line
                   and "sent again by the reaper" in line for line in errors), errors
    assert queued_messages() == 0  # nothing reached the real broker: no half-sent work

    # The broker is back. Within LAB_REQUEUE_AFTER_SECONDS nothing is sent (the message may be
    # on its way); after it, the reaper's requeue sends each one; run it twice: duplicates.
    now = timezone.now()
    assert reaper.iterations_requeue_lost(now=now) == 0
    later = now + dt.timedelta(seconds=settings.LAB_REQUEUE_AFTER_SECONDS + 1)
    assert reaper.iterations_requeue_lost(now=later) == 3
    assert reaper.iterations_requeue_lost(now=later) == 3
    assert queued_messages() == 6
    log = tmp_path / "worker.log"
    back = time.monotonic()
    with celery_process("worker", log, *WORKER_ARGS, "-c", "2"):
        wait_for(lambda: all(status_of(it.pk) == IterationStatus.SUCCEEDED for it in queued), timeout=90,
                 message="the queued iterations to run once the broker is back")
        recovered = time.monotonic() - back
        wait_for(lambda: log.read_text().count(f"{TASK}[") >= 12, timeout=30, message="every message to be done")
    assert len(received_task_ids(log, TASK)) == 6
    for iteration in queued:  # each ran exactly once
        assert Refinement.objects.filter(iteration=iteration).count() == 2
        assert LearningIteration.objects.filter(agent_id=iteration.agent_id).count() == 1
    assert nothing_running()
    print(f"\n[figures] broker down: API answered 202 in {api_took * 1000:.0f} ms (budget {publish_budget:.1f}s); "
          f"after the requeue, 3 iterations (6 messages) done {recovered:.1f}s after the worker started")


# --- database locked or dropped --------------------------------------------------------------
def worker_db_env():
    return {"LAB_SQLITE_TIMEOUT": 1}  # SQLite's busy timeout for the worker: a held lock fails fast


def test_sqlite_lock_retries_the_claim_and_the_final_write_while_api_reads_keep_working(
    fresh_broker, scripted_llm, client, tmp_path
):
    if not on_sqlite():
        pytest.skip("SQLite's write lock; PostgreSQL has its own test below")
    llm = scripted_llm({"status": 200, "body": claude_message(CANDIDATES)})
    first, second = (make_agent(refiner="claude", candidates_per_iteration=2) for _ in range(2))
    client.force_login(first.owner)
    path = connection.settings_dict["NAME"]
    log = tmp_path / "worker.log"

    def hold_write_lock(seconds, during=None, locked=None):
        """BEGIN IMMEDIATE from another connection: every other writer waits, readers (WAL) do not."""
        locker = sqlite3.connect(path, timeout=5, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")
        if locked is not None:
            locked.set()
        try:
            until = time.monotonic() + seconds
            if during:
                during()
            time.sleep(max(0.0, until - time.monotonic()))
        finally:
            locker.execute("ROLLBACK")
            locker.close()

    with celery_process("worker", log, *WORKER_ARGS, "-c", "1", **worker_db_env()):
        # 1. Locked when the worker claims: nothing is written, the task retries shortly.
        queued, _ = dispatch.iteration_queue(first, trigger="api")
        claim_started = time.monotonic()
        locked = threading.Event()
        locker = threading.Thread(target=hold_write_lock, args=(3.0,), kwargs={"locked": locked})
        locker.start()
        assert locked.wait(10)
        run_iteration_task.delay(queued.pk)
        locker.join()
        wait_for(lambda: status_of(queued.pk) == IterationStatus.SUCCEEDED, timeout=60,
                 message="the iteration whose claim met the lock")
        claim_recovered = time.monotonic() - claim_started
        assert "Retry in" in log.read_text()

        # 2. Locked when the worker records the outcome (the LLM answers after 2 s): the final
        # write waits and retries; meanwhile the API still reads.
        llm.steps = [{"status": 200, "body": claude_message(CANDIDATES), "delay": 2}]
        arrivals = len(llm.arrivals)
        iteration, _ = dispatch.iteration_start(second, trigger="api")
        wait_for(lambda: len(llm.arrivals) > arrivals, timeout=60, message="the second iteration's LLM call")
        reads = []

        def read_while_locked():
            for url in ("/api/learning-agents", f"/api/learning-agents/{first.pk}/iterations"):
                started = time.monotonic()
                response = client.get(url)
                reads.append((url, response.status_code, time.monotonic() - started))

        finish_started = time.monotonic()
        hold_write_lock(5.0, during=read_while_locked)
        wait_for(lambda: status_of(iteration.pk) == IterationStatus.SUCCEEDED, timeout=60,
                 message="the iteration whose final write met the lock")
        finish_recovered = time.monotonic() - finish_started
    text = log.read_text()
    assert "database unavailable while recording" in text  # the retry, logged
    assert [status for _url, status, _t in reads] == [200, 200], reads
    assert all(took < 1.0 for _url, _status, took in reads), reads  # readers never waited for the lock
    for done in (queued, iteration):
        assert Refinement.objects.filter(iteration=done).count() == 2  # no partial or repeated rows
    assert nothing_running()
    print(f"\n[figures] SQLite lock: claim retried, iteration done {claim_recovered:.1f}s after a 3s lock; "
          f"final write retried, done {finish_recovered:.1f}s after a 5s lock; API reads under the lock "
          + ", ".join(f"{took * 1000:.0f} ms" for _u, _s, took in reads))


def test_postgres_connection_drop_mid_iteration_is_survived(fresh_broker, scripted_llm, live_server, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL connections; SQLite has its own test above")
    import psycopg
    from rest_framework.authtoken.models import Token

    llm = scripted_llm({"status": 200, "body": claude_message(CANDIDATES), "delay": 2})
    first, second = (make_agent(refiner="claude", candidates_per_iteration=2) for _ in range(2))
    token = Token.objects.create(user=second.owner).key

    def api_get(path):
        """Through a real WSGI server (live_server), which checks its connection at each request."""
        request = urllib.request.Request(f"{live_server.url}{path}", headers={"Authorization": f"Token {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status

    assert api_get(f"/api/learning-agents/{second.pk}/iterations") == 200  # the server's connection exists
    db = connection.settings_dict
    admin = psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"],
                            password=db["PASSWORD"] or None, dbname="postgres", autocommit=True)

    def terminate_everyone():
        """Every connection to the test database (the worker's, and this test's own) is dropped."""
        return admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [db["NAME"]],
        ).fetchone()[0]

    log = tmp_path / "worker.log"
    try:
        with celery_process("worker", log, *WORKER_ARGS, "-c", "1"):
            # 1. Dropped while idle: the next task reconnects (CONN_HEALTH_CHECKS).
            done, _ = dispatch.iteration_start(first, trigger="api")
            wait_for(lambda: status_of(done.pk) == IterationStatus.SUCCEEDED, timeout=60, message="a first iteration")
            assert terminate_everyone() >= 1
            connection.close()  # this test's own connection was among them
            # 2. Dropped while the iteration waits on the LLM: its final write reconnects.
            iteration, _ = dispatch.iteration_start(second, trigger="api")
            wait_for(lambda: len(llm.arrivals) >= 2, timeout=60, message="the second iteration's LLM call")
            dropped = time.monotonic()
            killed = terminate_everyone()
            assert killed >= 2  # at least the worker's and the web server's
            assert api_get(f"/api/learning-agents/{second.pk}/iterations") == 200  # the web reconnects
            connection.close()  # this test's own connection died too
            wait_for(lambda: status_of(iteration.pk) in (IterationStatus.SUCCEEDED, IterationStatus.FAILED),
                     timeout=60, message="the iteration to end after the drop")
            recovered = time.monotonic() - dropped
    finally:
        admin.close()
    iteration.refresh_from_db()
    assert iteration.status == IterationStatus.SUCCEEDED, iteration.error
    assert Refinement.objects.filter(iteration=iteration).count() == 2
    assert nothing_running()
    print(f"\n[figures] PostgreSQL drop of {killed} connections mid-iteration: iteration succeeded "
          f"{recovered:.1f}s later (LLM answer due 2s after the call)")


# --- two beats ---------------------------------------------------------------------------
def test_two_beats_still_make_one_iteration_per_agent_and_slot(fresh_broker, tmp_path):
    # Both beats should be up before the same minute boundary (they take a few seconds to start).
    second = timezone.now().second
    if second >= 50:
        time.sleep(61 - second)
    agent = make_agent(candidates_per_iteration=2)
    scheduling.auto_learn_enable(agent, actor=agent.owner, cron="* * * * *")
    name = scheduling.periodic_task_name(agent.pk)
    assert PeriodicTask.objects.filter(name=name, enabled=True).exists()
    sending = re.compile(rf"^(\S+ \d\d:\d\d):\d\d\S* INFO celery.beat: Scheduler: Sending due task {re.escape(name)} ",
                         re.MULTILINE)
    logs = [tmp_path / "beat-1.log", tmp_path / "beat-2.log"]
    worker_log = tmp_path / "worker.log"

    def minutes_sent(log):
        return set(sending.findall(log.read_text()))

    with celery_process("worker", worker_log, *WORKER_ARGS, "-c", "2"):
        with (
            celery_process("beat", logs[0], "--schedule", str(tmp_path / "beat-1-schedule")),
            celery_process("beat", logs[1], "--schedule", str(tmp_path / "beat-2-schedule")),
        ):
            started = time.monotonic()
            both = wait_for(lambda: minutes_sent(logs[0]) & minutes_sent(logs[1]), timeout=75,
                            message="both beats to send the agent's task for the same minute")
            fired = time.monotonic() - started
        sends = sum(len(sending.findall(log.read_text())) for log in logs)
        minutes = minutes_sent(logs[0]) | minutes_sent(logs[1])
        # Every fire handled (the duplicate found its slot's iteration and queued nothing).
        done = re.compile(r"scheduled_iteration_task\[[0-9a-f-]+\] succeeded")
        wait_for(lambda: len(done.findall(worker_log.read_text())) == sends, timeout=30,
                 message="every fire to be processed")
        wait_for(lambda: not LearningIteration.objects.filter(agent=agent, status__in=dispatch.ACTIVE_STATUSES)
                 .exists(), timeout=60, message="the scheduled iterations to run")
    # (A beat that starts just after a boundary may also catch up the minute the schedule was
    # enabled in: that slot is sent by one beat only.)
    rows = list(LearningIteration.objects.filter(agent=agent))
    assert len(rows) == len(minutes), (sorted(minutes), [r.idempotency_key for r in rows])  # one per slot
    assert len({r.idempotency_key for r in rows}) == len(rows)
    assert all(r.trigger == IterationTrigger.SCHEDULE and r.idempotency_key.startswith("schedule:") for r in rows)
    assert all(r.status == IterationStatus.SUCCEEDED for r in rows)
    assert agent.activity.filter(event="scheduled_iteration_queued").count() == len(rows)
    print(f"\n[figures] two beats: both sent minute {sorted(both)[0][-5:]} {fired:.0f}s after start; "
          f"{sends} fires for {len(minutes)} slot(s) -> {len(rows)} iteration(s)")
