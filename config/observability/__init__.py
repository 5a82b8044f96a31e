"""Observability of the lab: structured logs, Prometheus metrics, health and heartbeats.

- `config.observability.logging`: the log formatters (text by default, JSON lines with
  LAB_LOG_FORMAT=json), the per-iteration / per-task log context and the redaction filter.
- `config.observability.metrics`: every Prometheus metric of the lab, the scrape-time
  collector reading the database and the broker, and multi-process mode.
- `config.observability.health`: `health_report()`, the one health computation behind
  `GET /health`, the `check_health` command and the admin dashboard.
- `config.observability.views`: `GET /health` and `GET /metrics`.
- `config.observability.celery_signals`: Celery hooks (task log context, metrics files of
  exiting pool processes, the optional per-worker metrics port).

Heartbeats of beat and workers, and the stale-scheduler alert, live in `alerts.heartbeat`.

- `config.observability.registry`: the health parts, health facts and gauges the apps register
  from their AppConfig.ready() (what they measure is theirs).

Nothing here imports an app: apps import this package (agents counts its iterations through
`metrics`) and register what it should report about them.
"""

from config.observability.logging import bind_log_context, log_context

__all__ = ["bind_log_context", "log_context"]
