"""Celery (read by config/celery.py under the CELERY_ prefix) and beat's lab-wide schedule."""

from django.core.exceptions import ImproperlyConfigured

from config.env import filesystem_broker_folders, number, positive_int, text

from .core import TIME_ZONE, VAR_DIR
from .lab import LAB_PAPER_INTERVAL_SECONDS, LAB_REPLAY_INTERVAL_SECONDS

CELERY_BROKER_URL = text("CELERY_BROKER_URL", "filesystem://")
LAB_ITERATION_SOFT_TIME_LIMIT = positive_int("LAB_ITERATION_SOFT_TIME_LIMIT", 300)
LAB_ITERATION_TIME_LIMIT = positive_int("LAB_ITERATION_TIME_LIMIT", 360)
if LAB_ITERATION_TIME_LIMIT <= LAB_ITERATION_SOFT_TIME_LIMIT:
    raise ImproperlyConfigured("LAB_ITERATION_TIME_LIMIT must be greater than LAB_ITERATION_SOFT_TIME_LIMIT")
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # An unacked message is redelivered after this; it must exceed the hard time limit
    # or Redis would hand a still-running iteration to a second worker.
    "visibility_timeout": LAB_ITERATION_TIME_LIMIT * 2,
}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The embedded broker: messages are files under var/broker (created by config.bootstrap).
    _folders = filesystem_broker_folders(VAR_DIR)
    CELERY_BROKER_TRANSPORT_OPTIONS.update(
        {
            "data_folder_in": str(_folders["queue"]),
            "data_folder_out": str(_folders["queue"]),
            "processed_folder": str(_folders["processed"]),
            "control_folder": str(_folders["control"]),
            "store_processed": False,
            # kombu polls the folder once a second by default, which capped a worker at about
            # one task a second (bench/throughput.py); a tenth of a second costs little.
            "polling_interval": number("LAB_BROKER_POLL_SECONDS", 0.1, 0.01, 5.0),
        }
    )
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# JSON only: unpickling a broker message is remote code execution.
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Tasks write their outcome to the lab's own rows; no result backend to run or expire.
CELERY_TASK_IGNORE_RESULT = True
# Ack after the task ran and requeue when the worker process died, so a killed worker's
# iteration is redelivered; tasks claim their work idempotently, so that is safe.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Iterations are long: a worker must not hoard messages that an idle worker could run.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Every task is bounded; the soft limit lets an iteration record its failure first.
CELERY_TASK_SOFT_TIME_LIMIT = LAB_ITERATION_SOFT_TIME_LIMIT
CELERY_TASK_TIME_LIMIT = LAB_ITERATION_TIME_LIMIT
# Long backtests get their own queue so alerts and ticks never wait behind them.
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_CREATE_MISSING_QUEUES = True
CELERY_TASK_ROUTES = {"agents.tasks.run_iteration_task": {"queue": "iterations"}}
# Schedules are rows edited at run time; exactly one beat process reads them.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
# Workers log through Django's LOGGING so the text/JSON format is one setting.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Beat -------------------------------------------------------------------------
# Lab-wide periodic tasks; DatabaseScheduler copies them into its tables at start-up.
# Per-agent learning schedules are rows written only by agents.services.scheduling.
CELERY_BEAT_SCHEDULE = {
    # `expires`: ticks do not pile up while no worker runs; the next one does the work.
    "continuous-learning-tick": {
        "task": "agents.tasks.continuous_tick_task", "schedule": 60.0, "options": {"expires": 55},
    },
    "reap-stuck-iterations": {
        "task": "agents.tasks.reap_stuck_iterations_task", "schedule": 120.0, "options": {"expires": 110},
    },
    "paper-tick": {
        "task": "graduation.tasks.paper_tick_task", "schedule": float(LAB_PAPER_INTERVAL_SECONDS),
        "options": {"expires": LAB_PAPER_INTERVAL_SECONDS},
    },
    "replay-tick": {
        "task": "graduation.tasks.replay_tick_task", "schedule": float(LAB_REPLAY_INTERVAL_SECONDS),
        "options": {"expires": LAB_REPLAY_INTERVAL_SECONDS},
    },
    "requeue-stale-deliveries": {
        "task": "alerts.tasks.requeue_stale_deliveries_task", "schedule": 120.0, "options": {"expires": 110},
    },
    "reconcile-schedules": {
        "task": "agents.tasks.reconcile_schedules_task", "schedule": 300.0, "options": {"expires": 290},
    },
    # Tournament round rows (`tournament:<id>:round`), which the agents' reconcile leaves alone.
    "reconcile-tournament-schedules": {
        "task": "tournaments.tasks.reconcile_schedules_task", "schedule": 300.0, "options": {"expires": 290},
    },
    # Standings follow the entrants' forward trading: recomputes only tournaments whose accounts moved.
    "refresh-tournament-standings": {
        "task": "tournaments.tasks.refresh_stale_standings_task", "schedule": float(LAB_PAPER_INTERVAL_SECONDS),
        "options": {"expires": LAB_PAPER_INTERVAL_SECONDS},
    },
    # Beat's own heartbeat (recorded by beat as it publishes) and proof a worker answers.
    "lab-heartbeat": {"task": "alerts.heartbeat.heartbeat_task", "schedule": 60.0, "options": {"expires": 55}},
}
# Imported by every worker and beat: heartbeat task and signals, log context, metrics hooks, beat's
# signal-safe shutdown.
CELERY_IMPORTS = ("alerts.heartbeat", "config.observability.celery_signals", "config.beat_shutdown")
