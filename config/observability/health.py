"""The lab's health: one computation behind GET /health, `manage.py check_health` and the
admin dashboard.

Parts (each {"ok": bool, ...}); the lab is healthy when every part is:

- database: a `SELECT 1` answers.
- broker: a connection to CELERY_BROKER_URL opens within LAB_HEALTH_TIMEOUT_SECONDS (the
  embedded filesystem broker: its queue folder exists and is writable).
- the parts the apps register (config.observability.registry), read only when the database
  answers: alerts registers beat (the single beat process published its heartbeat within
  LAB_HEARTBEAT_STALE_SECONDS) and workers (at least one worker did); its check also raises
  (once) the CRITICAL alert for a stale beat or no worker and the INFO recovery notice, in the
  web process or a cron job, never in the component it watches.

Plus the apps' facts, for information (agents: the iterations running and queued).

`health_report(public=True)` is the /health body: no secret, no host name, no error text
(errors go to the log); `public=False` (admin dashboard, command) adds each worker and the
error details.
"""

import logging
import os
import time

from django.conf import settings
from django.db import connection
from django.utils import timezone
from kombu import Connection

from config.observability import registry
from config.observability.logging import redact

logger = logging.getLogger(__name__)

OWN_PARTS = ("database", "broker")


def parts():
    """Every part of the report: this module's, then the apps' in registration order."""
    return OWN_PARTS + tuple(part for check in registry.health_checks() for part in check.parts)


def broker_connection():
    """A kombu connection to the lab's broker with the health timeout (not yet connected)."""
    timeout = settings.LAB_HEALTH_TIMEOUT_SECONDS
    options = dict(getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {})
    # Redis: bound the socket operations too, or a half-open connection hangs the check.
    options.setdefault("socket_timeout", timeout)
    options.setdefault("socket_connect_timeout", timeout)
    options.setdefault("max_retries", 1)
    return Connection(settings.CELERY_BROKER_URL, connect_timeout=timeout, transport_options=options)


def check_database():
    started = time.monotonic()
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        logger.error("health: database unreachable: %s", exc)
        return {"ok": False, "error": type(exc).__name__, "detail": redact(str(exc))[:300]}
    return {"ok": True, "latency_ms": round((time.monotonic() - started) * 1000, 1)}


def check_broker():
    url = settings.CELERY_BROKER_URL
    transport = url.split("://", 1)[0] or "unknown"
    started = time.monotonic()
    try:
        if transport == "filesystem":
            folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
            if not (os.path.isdir(folder) and os.access(folder, os.W_OK)):
                raise OSError("the broker's queue folder is missing or not writable")
        else:
            with broker_connection() as conn:
                conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0,
                                       timeout=settings.LAB_HEALTH_TIMEOUT_SECONDS)
                if transport.startswith(("redis", "rediss")):
                    conn.default_channel.client.ping()
    except Exception as exc:
        logger.error("health: broker (%s) unreachable: %s", transport, exc)
        return {"ok": False, "transport": transport, "error": type(exc).__name__, "detail": redact(str(exc))[:300]}
    return {"ok": True, "transport": transport, "latency_ms": round((time.monotonic() - started) * 1000, 1)}


def health_report(*, public=False, check_alerts=True, now=None):
    """The lab's health as a dict: {"healthy", "failing", "time", parts..., "iterations"}.

    `check_alerts`: also run the stale-scheduler check (alerts once per outage, recovery once).
    """
    now = now or timezone.now()
    report = {"database": check_database()}
    report["broker"] = check_broker()
    database_ok = report["database"]["ok"]
    for check in registry.health_checks():
        if not database_ok:
            report.update({part: {"ok": False, "error": "database unreachable"} for part in check.parts})
            continue
        try:
            found = check.read(now=now, check_alerts=check_alerts)
            report.update({part: found[part] for part in check.parts})
        except Exception as exc:
            logger.exception("health: could not read %s", ", ".join(check.parts))
            failure = {"ok": False, "error": type(exc).__name__, "detail": redact(str(exc))[:300]}
            report.update(dict.fromkeys(check.parts, failure))
    for name, read in registry.health_facts().items():
        report[name] = _fact(name, read) if database_ok else None
    failing = [part for part in parts() if not report[part]["ok"]]
    result = {"healthy": not failing, "status": "ok" if not failing else "unhealthy", "failing": failing,
              "time": now.isoformat(), **report}
    return _public(result) if public else result


def _fact(name, read):
    try:
        return read()
    except Exception:
        logger.exception("health: could not read %s", name)
        return None


def _public(report):
    """Drop what an unauthenticated caller must not read: error texts and worker names."""
    clean = dict(report)
    for part in parts():
        item = dict(clean[part])
        item.pop("detail", None)
        item.pop("members", None)
        clean[part] = item
    return clean


def format_report(report):
    """Plain text for the command line."""
    lines = [f"lab health: {report['status'].upper()}" + (f" (failing: {', '.join(report['failing'])})"
                                                          if report["failing"] else "")]
    for part in parts():
        item = report[part]
        facts = ", ".join(f"{k}={v}" for k, v in item.items() if k not in ("ok", "members"))
        lines.append(f"  {part:<9} {'ok ' if item['ok'] else 'FAIL'}  {facts}")
        for member in item.get("members") or []:
            state = "ok" if member["ok"] else ("stopped" if member.get("stopped") else "stale")
            lines.append(f"      {member['name']}: {state}, last seen {member['last_seen']} "
                         f"({member['age_seconds']}s ago)")
    for name in registry.health_facts():
        fact = report.get(name)
        if isinstance(fact, dict):
            lines.append(f"  {name} " + " ".join(f"{k}={v}" for k, v in fact.items()))
    return "\n".join(lines)
