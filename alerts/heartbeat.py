"""Heartbeats of beat and the workers, and the alert when the lab's scheduler dies.

Rows of ``Heartbeat``: "beat" is written by the beat process when it starts and whenever it
publishes a task (at most every BEAT_WRITE_EVERY s; it publishes ``heartbeat_task`` every
minute, so a live beat writes whether or not a worker is free). "worker:<hostname>" is written
by each worker's main process from a daemon thread (so a worker busy with long iterations still
counts as alive) and by the pool process running ``heartbeat_task`` (proof that beat -> broker
-> worker works); "workers" holds the latest of any worker.

``scheduler_health_check``: a component is stale when its last heartbeat is older than
LAB_HEARTBEAT_STALE_SECONDS (never seen: after the check has watched that long). The first
stale check raises one CRITICAL SYSTEM alert (``scheduler:beat`` / ``scheduler:workers``), once
per outage however many processes check (``Heartbeat.alerted``, a conditional UPDATE); the
first healthy one acknowledges it and raises one INFO recovery notice. The check runs where the
watched component is not needed: /health, the admin dashboard, ``check_health`` under cron,
and (for beat) every worker's heartbeat thread.
"""

import datetime as dt
import logging
import os
import threading
import time

from celery import shared_task, signals
from django.conf import settings
from django.db import IntegrityError, close_old_connections, connections, transaction
from django.db.models import Q
from django.utils import timezone

from alerts.models import AgentAlert, AlertType, Heartbeat, Severity
from alerts.services import alerts_acknowledge, system_alert_raise

logger = logging.getLogger(__name__)

BEAT = "beat"
WORKERS = "workers"
WORKER_PREFIX = "worker:"
COMPONENTS = (BEAT, WORKERS)
BEAT_WRITE_EVERY = 10.0
# Worker rows not seen for this long are left out of the report (a host that went away).
FORGET_WORKERS_AFTER = dt.timedelta(days=1)
FINGERPRINT = "scheduler:{}"

_DESCRIPTIONS = {
    BEAT: (
        "Celery beat",
        "schedules, continuous learning, the iteration reaper and paper trading are not running; "
        "check the single `celery -A config beat` process",
    ),
    WORKERS: (
        "Celery workers",
        "no Celery worker is running: queued iterations and alert deliveries are waiting; "
        "check the `celery -A config worker` processes and the broker",
    ),
}


# --- recording -----------------------------------------------------------------------------
def heartbeat_record(component, *, now=None, details=None):
    """Set the component's last_seen to `now` (never backwards) and its details."""
    now = now or timezone.now()
    fields = {"last_seen": now}
    if details is not None:
        fields["details"] = details
    newer = Q(last_seen__isnull=True) | Q(last_seen__lt=now)
    if Heartbeat.objects.filter(newer, component=component).update(**fields):
        return
    if Heartbeat.objects.filter(component=component).exists():
        return  # a newer heartbeat is already there
    try:
        with transaction.atomic():
            Heartbeat.objects.create(component=component, **fields)
    except IntegrityError:  # created concurrently: just update it
        Heartbeat.objects.filter(newer, component=component).update(**fields)


def worker_record(hostname, *, source, now=None, stopped=False):
    now = now or timezone.now()
    details = {"hostname": hostname, "pid": os.getpid(), "source": source, "stopped": stopped}
    if source == "task":
        details["last_task_at"] = now.isoformat()
    else:
        previous = Heartbeat.objects.filter(component=WORKER_PREFIX + hostname).values_list("details", flat=True)
        last_task = (previous.first() or {}).get("last_task_at")
        if last_task:
            details["last_task_at"] = last_task
    heartbeat_record(WORKER_PREFIX + hostname, now=now, details=details)
    if not stopped:
        heartbeat_record(WORKERS, now=now)


def worker_stopped(hostname):
    Heartbeat.objects.filter(component=WORKER_PREFIX + hostname).update(
        details={"hostname": hostname, "pid": os.getpid(), "source": "shutdown", "stopped": True}
    )


# --- status and the check ------------------------------------------------------------------
def _limit():
    return dt.timedelta(seconds=settings.LAB_HEARTBEAT_STALE_SECONDS)


def _age(now, seen):
    return None if seen is None else round(max((now - seen).total_seconds(), 0.0), 1)


def _part(row, now, *, ok):
    seen = row.last_seen if row else None
    return {
        "ok": ok,
        "state": "ok" if ok else ("never_seen" if seen is None else "stale"),
        "last_seen": seen.isoformat() if seen else None,
        "age_seconds": _age(now, seen),
        "limit_seconds": settings.LAB_HEARTBEAT_STALE_SECONDS,
        "alerted": bool(row and row.alerted),
    }


def scheduler_status(now=None):
    """{"beat": part, "workers": part} from the heartbeat rows; no side effect."""
    now = now or timezone.now()
    limit = _limit()
    rows = {row.component: row for row in Heartbeat.objects.filter(component__in=COMPONENTS)}
    beat = rows.get(BEAT)
    status = {BEAT: _part(beat, now, ok=bool(beat and beat.last_seen and now - beat.last_seen <= limit))}
    members = []
    for row in Heartbeat.objects.filter(
        component__startswith=WORKER_PREFIX, last_seen__gte=now - FORGET_WORKERS_AFTER
    ).order_by("component"):
        stopped = bool((row.details or {}).get("stopped"))
        alive = not stopped and now - row.last_seen <= limit
        members.append({
            "name": row.component[len(WORKER_PREFIX):], "ok": alive, "stopped": stopped,
            "last_seen": row.last_seen.isoformat(), "age_seconds": _age(now, row.last_seen),
            "last_task_at": (row.details or {}).get("last_task_at"),
        })
    alive = sum(m["ok"] for m in members)
    workers = _part(rows.get(WORKERS), now, ok=alive > 0)
    if workers["state"] == "stale" and members and all(m["stopped"] for m in members):
        workers["state"] = "stopped"
    workers.update(alive=alive, members=members)
    status[WORKERS] = workers
    return status


def scheduler_health_check(now=None, *, components=COMPONENTS):
    """scheduler_status(), raising the stale alert or the recovery notice on a change (once)."""
    now = now or timezone.now()
    status = scheduler_status(now)
    for component in components:
        part = status[component]
        row = Heartbeat.objects.filter(component=component).first()
        if not part["ok"]:
            if row is None:
                row, _created = Heartbeat.objects.get_or_create(component=component, defaults={"watched_since": now})
            elif row.last_seen is None and row.watched_since is None:
                Heartbeat.objects.filter(pk=row.pk, watched_since__isnull=True).update(watched_since=now)
                row.watched_since = now
            silent_since = row.last_seen or row.watched_since
            if silent_since is not None and now - silent_since > _limit() and not row.alerted:
                part["alerted"] = _raise_stale(component, row, part, now) or part["alerted"]
        elif row is not None and row.alerted:
            _announce_recovery(component, row, part, now)
            part["alerted"] = False
    return status


def _raise_stale(component, row, part, now):
    name, consequence = _DESCRIPTIONS[component]
    if part["last_seen"] is None:
        message = f"{name} has never reported (watched since {row.watched_since:%Y-%m-%d %H:%M:%S} UTC): {consequence}."
    else:
        message = (f"{name} silent for {int(part['age_seconds'])}s (limit {part['limit_seconds']}s, last seen "
                   f"{row.last_seen:%Y-%m-%d %H:%M:%S} UTC): {consequence}.")
    with transaction.atomic():
        won = Heartbeat.objects.filter(pk=row.pk, alerted=False).update(alerted=True, alerted_at=now)
        if not won:
            return False  # another check raised it
        system_alert_raise(
            alert_type=AlertType.SYSTEM, severity=Severity.CRITICAL, message=message,
                fingerprint=FINGERPRINT.format(component),
            details={"component": component, **{k: part.get(k) for k in ("last_seen", "age_seconds",
                                                                            "limit_seconds", "state")}},
            now=now,
        )
    logger.error("scheduler health: %s", message)
    return True


def _announce_recovery(component, row, part, now):
    name, _consequence = _DESCRIPTIONS[component]
    with transaction.atomic():
        won = Heartbeat.objects.filter(pk=row.pk, alerted=True).update(alerted=False)
        if not won:
            return False
        down_since = row.alerted_at or now
        outage = int((now - down_since).total_seconds())
        message = f"{name} is back (alerted {down_since:%Y-%m-%d %H:%M:%S} UTC, {outage}s ago)."
        alerts_acknowledge(
            AgentAlert.objects.filter(agent__isnull=True, alert_type=AlertType.SYSTEM,
                                      fingerprint=FINGERPRINT.format(component)),
            user=None, now=now,
        )
        system_alert_raise(
            alert_type=AlertType.SYSTEM, severity=Severity.INFO, message=message,
            fingerprint=f"{FINGERPRINT.format(component)}:recovered:{down_since:%Y%m%dT%H%M%S}",
            details={"component": component, "alerted_at": down_since.isoformat(), "last_seen": part["last_seen"]},
            now=now,
        )
    logger.warning("scheduler health: %s", message)
    return True


# --- Celery wiring (imported by workers and beat through CELERY_IMPORTS) -------------------
@shared_task(name="alerts.heartbeat.heartbeat_task", bind=True, ignore_result=True)
def heartbeat_task(self):
    """Beat's minute heartbeat, run by whichever worker takes it (proves the whole path)."""
    worker_record(self.request.hostname or "unknown", source="task")


_state = {"in_beat": False, "last_beat_write": 0.0, "thread": None}


@signals.beat_init.connect(weak=False, dispatch_uid="alerts.heartbeat.beat_init")
def _on_beat_init(sender=None, **kwargs):
    _state["in_beat"] = True
    _record_beat("start")  # up at once, not only after the first interval elapses


def _record_beat(what):
    try:
        close_old_connections()
        heartbeat_record(BEAT, details={"pid": os.getpid(), "last": what})
        _state["last_beat_write"] = time.monotonic()
    except Exception:  # a heartbeat must never stop beat from publishing
        logger.warning("could not record the beat heartbeat", exc_info=True)


@signals.before_task_publish.connect(weak=False, dispatch_uid="alerts.heartbeat.beat_publish")
def _on_publish(sender=None, **kwargs):
    if _state["in_beat"] and time.monotonic() - _state["last_beat_write"] >= BEAT_WRITE_EVERY:
        _record_beat(str(sender))


class WorkerHeartbeatThread(threading.Thread):
    """Records this worker's heartbeat (and checks beat) every LAB_HEARTBEAT_INTERVAL_SECONDS."""

    def __init__(self, hostname, interval):
        super().__init__(name="lab-heartbeat", daemon=True)
        self.hostname, self.interval = hostname, interval
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.wait(self.interval):
            self.beat_once()

    def beat_once(self):
        try:
            worker_record(self.hostname, source="timer")
            scheduler_health_check(components=(BEAT,))
        except Exception:
            logger.warning("worker heartbeat failed", exc_info=True)
        finally:
            connections.close_all()  # this thread's connections only; never held across a fork


@signals.worker_ready.connect(weak=False, dispatch_uid="alerts.heartbeat.worker_ready")
def _on_worker_ready(sender=None, **kwargs):
    hostname = getattr(sender, "hostname", None) or "unknown"
    try:
        worker_record(hostname, source="ready")
    except Exception:
        logger.warning("could not record the worker heartbeat", exc_info=True)
    finally:
        connections.close_all()
    thread = WorkerHeartbeatThread(hostname, settings.LAB_HEARTBEAT_INTERVAL_SECONDS)
    _state["thread"] = thread
    thread.start()


@signals.worker_shutdown.connect(weak=False, dispatch_uid="alerts.heartbeat.worker_shutdown")
def _on_worker_shutdown(sender=None, **kwargs):
    thread = _state.get("thread")
    if thread is not None:
        thread.stopping.set()
    try:
        worker_stopped(getattr(sender, "hostname", None) or "unknown")
    except Exception:
        logger.warning("could not mark the worker stopped", exc_info=True)
    finally:
        connections.close_all()
