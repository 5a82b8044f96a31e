"""Logging, /health, /metrics and heartbeats (config/observability/, alerts/heartbeat.py)."""

import ipaddress

from django.core.exceptions import ImproperlyConfigured

from config.env import choice, integer, metrics_multiprocess, number, positive_int, text, text_list

# --- Logging --------------------------------------------------------------------------
LAB_LOG_FORMAT = choice("LAB_LOG_FORMAT", "text", ("text", "json"))
LAB_LOG_LEVEL = choice("LAB_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
                       fold_case=True)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Formatters, context (agent/iteration/task ids) and redaction: config/observability/logging.py.
    "filters": {
        "context": {"()": "config.observability.logging.ContextFilter"},
        "redact": {"()": "config.observability.logging.RedactFilter"},
    },
    "formatters": {
        "text": {"()": "config.observability.logging.TextFormatter"},
        "json": {"()": "config.observability.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LAB_LOG_FORMAT, "filters": ["context", "redact"]},
    },
    "root": {"handlers": ["console"], "level": LAB_LOG_LEVEL},
    "loggers": {
        "django": {"level": "INFO"},
        "optuna": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
    },
}

# --- /metrics -------------------------------------------------------------------------
# Bearer token letting a scraper read /metrics from any address; empty = allow-list only.
LAB_METRICS_TOKEN = text("LAB_METRICS_TOKEN")
# Addresses or networks (REMOTE_ADDR) that may read /metrics without the token.
LAB_METRICS_ALLOW_IPS = text_list("LAB_METRICS_ALLOW_IPS", ["127.0.0.1", "::1"])
for _ip in LAB_METRICS_ALLOW_IPS:
    try:
        ipaddress.ip_network(_ip, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"LAB_METRICS_ALLOW_IPS: {_ip!r} is not an address or network ({_exc})")
# Multi-process metrics (every process writes under PROMETHEUS_MULTIPROC_DIR, /metrics merges
# them): config.bootstrap sets that folder up, before prometheus_client is imported. 0: in-process.
LAB_METRICS_MULTIPROCESS = metrics_multiprocess()
# A worker on another host than the web serves its metrics on this port (0 = off) and address.
LAB_WORKER_METRICS_PORT = integer("LAB_WORKER_METRICS_PORT", 0, low=0, high=65535)
LAB_WORKER_METRICS_ADDR = text("LAB_WORKER_METRICS_ADDR", "127.0.0.1")

# --- /health and heartbeats -----------------------------------------------------------
# Beat, or every worker, silent for longer than this: /health 503 and one CRITICAL alert.
LAB_HEARTBEAT_STALE_SECONDS = positive_int("LAB_HEARTBEAT_STALE_SECONDS", 180)
# How often each worker's main process records its heartbeat; well under the stale limit.
LAB_HEARTBEAT_INTERVAL_SECONDS = positive_int("LAB_HEARTBEAT_INTERVAL_SECONDS", 30)
if LAB_HEARTBEAT_INTERVAL_SECONDS * 2 > LAB_HEARTBEAT_STALE_SECONDS:
    raise ImproperlyConfigured("LAB_HEARTBEAT_INTERVAL_SECONDS must be at most half of LAB_HEARTBEAT_STALE_SECONDS")
# Timeout of the database and broker checks of /health (seconds).
LAB_HEALTH_TIMEOUT_SECONDS = number("LAB_HEALTH_TIMEOUT_SECONDS", 2.0, 0.1, 60.0)
