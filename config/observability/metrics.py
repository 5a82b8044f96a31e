"""Prometheus metrics of the lab (prometheus-client), exposed at GET /metrics.

Counters and histograms are incremented through the small functions below where things happen;
counts tied to a database write are added when the transaction commits, so a rolled-back
decision is never counted. Gauges are computed at scrape time by ``LabStateCollector`` from the
database (registered by the app owning the rows, config.observability.registry) and the broker,
so they are right whichever process serves the scrape. Each metric's declaration below carries
its help text; README "Observability" lists them.

Multi-process: web, Celery pool children and beat are separate processes, and an iteration
counted in a worker must show in the web's /metrics. With PROMETHEUS_MULTIPROC_DIR set (the
bootstrap sets it to var/prometheus unless LAB_METRICS_MULTIPROCESS=0, before prometheus_client
is imported) every process writes its values to files there and /metrics merges them. Exiting
processes are marked dead (gunicorn: config/observability/gunicorn.py; pool children:
``worker_process_shutdown``); counters keep their values, as Prometheus expects. Workers on other
hosts set LAB_WORKER_METRICS_PORT and are scraped themselves.
"""

import logging

from django.conf import settings
from django.db import transaction
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    multiprocess,
    values,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily

from config.observability import registry
from config.observability.health import broker_connection

logger = logging.getLogger(__name__)

# Decided by prometheus_client at import from PROMETHEUS_MULTIPROC_DIR.
MULTIPROCESS = values.ValueClass is not values.MutexValue

ITERATIONS = Counter("lab_iterations_finished", "Learning iterations that ended, by final status and trigger.",
                     ["status", "trigger"])
ITERATION_SECONDS = Histogram(
    "lab_iteration_duration_seconds", "Duration of a learning iteration, claim to finish.", ["status"],
    buckets=(1, 2.5, 5, 10, 20, 30, 60, 120, 180, 300, 600, float("inf")),
)
BACKTEST_SECONDS = Histogram(
    "lab_backtest_duration_seconds", "Backtest of one parameter set on the train and validation windows.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, float("inf")),
)
DECISIONS = Counter("lab_refinement_decisions", "Decisions on refinements and versions.", ["decision", "mode"])
LLM_CALLS = Counter("lab_llm_calls", "Calls of the LLM refiner, by outcome.", ["outcome"])
LLM_TOKENS = Counter("lab_llm_tokens", "LLM tokens billed, by direction and call outcome.", ["direction", "outcome"])
ALERTS = Counter("lab_alerts_raised", "Alerts raised, by type and severity; kind new or repeat.",
                 ["type", "severity", "kind"])
DELIVERIES = Counter("lab_deliveries", "Notification delivery attempts, by channel kind and outcome.",
                     ["channel_kind", "outcome"])


def _on_commit(func):
    """Run after the current transaction commits (at once outside one); never raises."""
    def safe():
        try:
            func()
        except Exception:  # metrics must never break the work they count
            logger.exception("metrics update failed")

    try:
        transaction.on_commit(safe)
    except Exception:
        safe()


# --- instrumentation points ----------------------------------------------------------------
def iteration_finished(status, trigger, seconds):
    def count():
        ITERATIONS.labels(status=str(status), trigger=str(trigger)).inc()
        ITERATION_SECONDS.labels(status=str(status)).observe(max(float(seconds), 0.0))

    _on_commit(count)


def backtest_observed(seconds):
    BACKTEST_SECONDS.observe(max(float(seconds), 0.0))


def refinement_decided(decision, *, automatic=False, count=1):
    if count:
        _on_commit(lambda: DECISIONS.labels(decision=decision, mode="auto" if automatic else "manual").inc(count))


def llm_call_counted(outcome, *, input_tokens=0, output_tokens=0):
    """One call of an LLM refiner (`outcome`: success|error|unavailable|auth_error|skipped_budget)
    and the tokens it billed; agents decides the outcome of its own refiners."""
    try:
        LLM_CALLS.labels(outcome=outcome).inc()
        for direction, tokens in (("input", input_tokens), ("output", output_tokens)):
            if tokens:
                LLM_TOKENS.labels(direction=direction, outcome=outcome).inc(tokens)
    except Exception:
        logger.exception("metrics update failed")


def alert_raised(alert_type, severity, *, new):
    _on_commit(lambda: ALERTS.labels(type=str(alert_type), severity=str(severity),
                                     kind="new" if new else "repeat").inc())


def delivery_counted(channel_kind, outcome):
    """One delivery attempt that ended `outcome` (succeeded|retrying|failed) on a channel kind."""
    try:
        DELIVERIES.labels(channel_kind=channel_kind, outcome=outcome).inc()
    except Exception:
        logger.exception("metrics update failed")


# --- scrape-time gauges --------------------------------------------------------------------
def celery_queues():
    queues = {settings.CELERY_TASK_DEFAULT_QUEUE}
    for route in (getattr(settings, "CELERY_TASK_ROUTES", None) or {}).values():
        if isinstance(route, dict) and route.get("queue"):
            queues.add(route["queue"])
    return sorted(queues)


def queue_lengths(queues):
    """{queue: messages waiting}, for brokers that can tell (virtual transports and AMQP)."""
    lengths = {}
    with broker_connection() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=conn.connect_timeout)
        channel = conn.default_channel
        for queue in queues:
            try:
                if hasattr(channel, "_size"):  # kombu virtual transports: Redis LLEN, filesystem files
                    lengths[queue] = int(channel._size(queue))
                else:  # AMQP: a passive declare reports the count
                    lengths[queue] = int(channel.queue_declare(queue=queue, passive=True).message_count)
            except Exception:  # not declared yet (AMQP 404) or unsupported: leave it out
                logger.debug("no length for queue %s", queue, exc_info=True)
    return lengths


class LabStateCollector:
    """Gauges read from the database and the broker on every scrape."""

    def collect(self):
        ok = GaugeMetricFamily("lab_scrape_ok", "1 when this part of the lab state could be read.", labels=["part"])
        try:
            yield from self._database()
            ok.add_metric(["database"], 1)
        except Exception:
            logger.warning("metrics: could not read the database", exc_info=True)
            ok.add_metric(["database"], 0)
        try:
            yield from self._broker()
            ok.add_metric(["broker"], 1)
        except Exception:
            logger.warning("metrics: could not read the broker", exc_info=True)
            ok.add_metric(["broker"], 0)
        yield ok

    def _database(self):
        for collect in registry.gauges():
            yield from collect()

    def _broker(self):
        lengths = GaugeMetricFamily("lab_celery_queue_length", "Messages waiting in each Celery queue.",
                                    labels=["queue"])
        for queue, length in sorted(queue_lengths(celery_queues()).items()):
            lengths.add_metric([queue], length)
        yield lengths


class _ProcessMetrics:
    """This process's own metrics (the default registry), for single-process mode."""

    def collect(self):
        return REGISTRY.collect()


def build_registry(*, path=None, lab_state=True):
    """A registry for one scrape: every process's metrics (merged from the multi-process
    directory when in that mode, else this process's), plus the lab-state gauges."""
    registry = CollectorRegistry(auto_describe=False)
    if path is not None or MULTIPROCESS:
        multiprocess.MultiProcessCollector(registry, path=path)
    else:
        registry.register(_ProcessMetrics())
    if lab_state:
        registry.register(LabStateCollector())
    return registry


def render(accept_header=""):
    """(body, content type) of one scrape, in the format the scraper asked for."""
    encoder, content_type = choose_encoder(accept_header or "")
    return encoder(build_registry()), content_type


def mark_process_dead(pid):
    """Bookkeeping for an exited process in multi-process mode (its live gauges go away)."""
    if MULTIPROCESS:
        try:
            multiprocess.mark_process_dead(pid)
        except Exception:
            logger.warning("could not mark process %s dead for metrics", pid, exc_info=True)
