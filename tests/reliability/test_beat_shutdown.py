"""Beat stops at once on SIGINT + SIGTERM, even in the middle of a database call (issue 17).

Celery's own handler saved the schedule from inside the signal handler. On PostgreSQL a signal
landing while beat waited on a query re-entered the same psycopg connection from the handler and
hung on the connection's lock forever; the final save was lost and only a kill ended it
(config/beat_shutdown.py). Here the test makes beat wait on a query for certain: it holds the lock
of beat's heartbeat row (a write lock on SQLite) until beat, publishing, blocks on it; then sends
both signals, as a terminal's Ctrl-C plus a launcher's SIGTERM did, and lets the query go.
"""

import datetime as dt
import signal
import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from alerts.heartbeat import BEAT_WRITE_EVERY
from alerts.models import Heartbeat
from tests.processes import celery_process, wait_for
from tests.reliability.helpers import on_sqlite

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker, pytest.mark.slow]

STOP_WITHIN = 15.0


def beat_waiting_on_a_lock():
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query ILIKE %s", ["%alerts_heartbeat%"])
        return cursor.fetchone()[0] > 0


def test_beat_stops_within_seconds_when_signalled_during_a_query(fresh_broker, tmp_path):
    log = tmp_path / "beat.log"
    # A due task every second: beat publishes (and writes its heartbeat) often.
    with celery_process("beat", log, LAB_PAPER_INTERVAL_SECONDS=1, LAB_REPLAY_INTERVAL_SECONDS=1) as beat:
        wait_for(lambda: Heartbeat.objects.filter(component="beat").exists(), timeout=30,
                 message="beat's first heartbeat")
        locked, release = threading.Event(), threading.Event()

        def hold_the_heartbeat_row():
            try:
                with transaction.atomic():  # on SQLite: BEGIN IMMEDIATE, the database's write lock
                    list(Heartbeat.objects.select_for_update().filter(component="beat"))
                    locked.set()
                    release.wait(30)
            finally:
                connection.close()

        holder = threading.Thread(target=hold_the_heartbeat_row)
        holder.start()
        assert locked.wait(10)
        if on_sqlite():
            # No view of waiting queries: beat's next heartbeat write is due BEAT_WRITE_EVERY after the last.
            time.sleep(BEAT_WRITE_EVERY + 2)
        else:
            wait_for(beat_waiting_on_a_lock, timeout=BEAT_WRITE_EVERY + 10, interval=0.1,
                     message="beat to wait on the heartbeat row")
        signalled_at, started = timezone.now(), time.monotonic()
        beat.send_signal(signal.SIGINT)
        time.sleep(0.05)
        beat.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        release.set()  # the query beat was waiting on completes
        holder.join(10)
        try:
            beat.wait(timeout=STOP_WITHIN)
        except Exception:
            pytest.fail(f"beat still running {STOP_WITHIN}s after SIGINT + SIGTERM:\n{log.read_text()[-3000:]}")
        took = time.monotonic() - started
    text = log.read_text()
    assert beat.returncode == 0, text[-3000:]
    assert took < STOP_WITHIN
    assert "Traceback" not in text, text[-3000:]
    # The final save ran: the schedule's last run of the every-second task is recent.
    last_run = PeriodicTask.objects.get(name="paper-tick").last_run_at
    assert last_run is not None and last_run >= signalled_at - dt.timedelta(seconds=5), (last_run, signalled_at)
    print(f"\n[figures] beat stopped {took:.1f}s after SIGINT + SIGTERM during a blocked query")
