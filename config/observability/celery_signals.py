"""Celery hooks of the observability layer; imported by workers and beat via CELERY_IMPORTS.

- Every record logged while a task runs carries `task_id` and `task_name` (log context).
- A pool process that exits is marked dead for the multi-process metrics.
- With LAB_WORKER_METRICS_PORT set, the worker's main process serves /metrics on that port
  (this host's processes, from its PROMETHEUS_MULTIPROC_DIR): for workers on hosts other than
  the web's. The lab-state gauges are left to the web's /metrics.
"""

import logging
import os

from celery import signals
from django.conf import settings
from prometheus_client import start_http_server

from config.observability import metrics
from config.observability.logging import pop_log_context, push_log_context

logger = logging.getLogger(__name__)
_tokens = {}


@signals.task_prerun.connect(weak=False, dispatch_uid="observability.task_prerun")
def _task_context_start(task_id=None, task=None, **kwargs):
    _tokens[task_id] = push_log_context(task_id=task_id, task_name=getattr(task, "name", None))


@signals.task_postrun.connect(weak=False, dispatch_uid="observability.task_postrun")
def _task_context_end(task_id=None, **kwargs):
    token = _tokens.pop(task_id, None)
    if token is not None:
        pop_log_context(token)


@signals.worker_process_shutdown.connect(weak=False, dispatch_uid="observability.process_shutdown")
def _pool_process_exit(pid=None, **kwargs):
    metrics.mark_process_dead(pid or os.getpid())


@signals.worker_ready.connect(weak=False, dispatch_uid="observability.worker_metrics_port")
def _serve_worker_metrics(sender=None, **kwargs):
    port = getattr(settings, "LAB_WORKER_METRICS_PORT", 0)
    if not port:
        return
    server, _thread = start_http_server(port, addr=settings.LAB_WORKER_METRICS_ADDR,
                                        registry=metrics.build_registry(lab_state=False))
    logger.info("worker metrics served on %s:%s", settings.LAB_WORKER_METRICS_ADDR, port)
    return server
