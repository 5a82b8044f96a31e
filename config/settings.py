"""Settings for the Agent Learning Lab, read from the environment.

Every value has a safe default for the embedded mode (SQLite + filesystem broker under
var/), and a bad value fails loudly at start-up instead of half-working.
"""

import ipaddress
import json
import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("LAB_VAR_DIR", default=str(BASE_DIR / "var")))
# Parallel test processes (pytest-xdist sets PYTEST_XDIST_WORKER=gw0, gw1...) each get their own
# embedded database, broker folder and broker database, so the real Celery worker one of them
# starts never takes another's messages.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if XDIST_WORKER:
    VAR_DIR = VAR_DIR / XDIST_WORKER
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()


def _positive_int(name, default):
    value = env.int(name, default=default)
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive integer, got {value}")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _bool(name, default):
    raw = env.str(name, default=str(default)).strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false, 1/0, yes/no, on/off), got {raw!r}")


def _float_in(name, default, low, high):
    value = env.float(name, default=default)
    if not low <= value <= high:
        raise ImproperlyConfigured(f"{name} must be between {low} and {high}, got {value}")
    return value


def _secret_key():
    key_file = env.str("DJANGO_SECRET_KEY_FILE", default="")
    if key_file:
        return Path(key_file).read_text().strip()
    key = env.str("DJANGO_SECRET_KEY", default="")
    if key:
        return key
    # A per-install key kept under var/ so sessions survive restarts without
    # committing a secret; production sets DJANGO_SECRET_KEY or _FILE.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        from django.core.management.utils import get_random_secret_key

        path.write_text(get_random_secret_key())
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = _bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "django_celery_beat",
    "agents",
    "alerts",
    "graduation",
    "console",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Bodies over LAB_MAX_BODY_BYTES: 413 before any parser reads them (DRF's do not check).
    "config.middleware.BodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'lab.sqlite3'}"),
}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db.setdefault("OPTIONS", {})
    _db["OPTIONS"].update(
        {
            # WAL lets the web process read while a worker writes; IMMEDIATE takes the
            # write lock at BEGIN so concurrent writers queue on the busy timeout instead
            # of failing with "database is locked" on lock upgrade.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": env.int("LAB_SQLITE_TIMEOUT", default=20),
        }
    )
    _db.setdefault("TEST", {})
    # A file (not :memory:) so a real Celery worker process in tests sees the same data.
    _db["TEST"].setdefault("NAME", str(VAR_DIR / "test_lab.sqlite3"))
else:
    _db.setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    _db["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# The day boundary for daily caps and budgets is midnight in this zone.
TIME_ZONE = env.str("LAB_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

LOGIN_URL = "admin:login"

# --- Security (production values switch on with DEBUG off behind HTTPS) ----------------
SECURE_HTTPS = _bool("LAB_HTTPS", False)
SESSION_COOKIE_SECURE = SECURE_HTTPS
CSRF_COOKIE_SECURE = SECURE_HTTPS
SECURE_SSL_REDIRECT = SECURE_HTTPS
SECURE_HSTS_SECONDS = 31536000 if SECURE_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HTTPS
SECURE_HSTS_PRELOAD = SECURE_HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if _bool("LAB_BEHIND_PROXY", False) else None
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("LAB_MAX_BODY_BYTES", default=1_000_000)
# Bar file uploads (POST /api/instruments/<symbol>/bars, the console's Import bars page) may be
# larger than other bodies; files over LAB_IMPORT_INLINE_MAX_BYTES are imported by a worker.
LAB_MAX_UPLOAD_BYTES = _positive_int("LAB_MAX_UPLOAD_BYTES", 50_000_000)
LAB_IMPORT_INLINE_MAX_BYTES = _positive_int("LAB_IMPORT_INLINE_MAX_BYTES", 1_000_000)

# --- REST framework -------------------------------------------------------------------
# The throttles count in the cache: LAB_CACHE_URL=redis://host:6379/2 shares the counts between web
# processes so the rates hold per user lab-wide; the default counts in each process.
CACHES = {"default": env.cache_url("LAB_CACHE_URL", default="locmemcache://")}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's JSON parser with a nesting limit (core/parsers.py); forms for the browsable API.
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.LabJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "core.filters.StrictOrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.LabPagination",
    "PAGE_SIZE": env.int("LAB_API_PAGE_SIZE", default=50),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.exception_handler.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
        "rest_framework.throttling.ScopedRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("LAB_THROTTLE_ANON", default="60/min"),
        "user": env.str("LAB_THROTTLE_USER", default="2000/min"),
        "start_work": env.str("LAB_THROTTLE_START_WORK", default="120/min"),
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Agent Learning Lab API",
    "DESCRIPTION": "Autonomous trading-strategy agents: learning, autonomy, alerts, graduation.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ContinuousStateEnum": "agents.models.ContinuousState",
        "AlertTypeEnum": "alerts.models.AlertType",
        "SeverityEnum": "alerts.models.Severity",
        "AgentStatusEnum": "agents.models.AgentStatus",
    },
}

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if XDIST_WORKER and CELERY_BROKER_URL.startswith("redis://"):
    _base, _, _db = CELERY_BROKER_URL.rpartition("/")
    _index = int(_db) if _db.isdigit() else 0
    CELERY_BROKER_URL = f"{_base}/{_index + 1 + int(XDIST_WORKER.removeprefix('gw'))}"
    # Celery reads this variable itself, ahead of the settings: keep the two in agreement.
    os.environ["CELERY_BROKER_URL"] = CELERY_BROKER_URL
LAB_ITERATION_SOFT_TIME_LIMIT = _positive_int("LAB_ITERATION_SOFT_TIME_LIMIT", 300)
LAB_ITERATION_TIME_LIMIT = _positive_int("LAB_ITERATION_TIME_LIMIT", 360)
if LAB_ITERATION_TIME_LIMIT <= LAB_ITERATION_SOFT_TIME_LIMIT:
    raise ImproperlyConfigured("LAB_ITERATION_TIME_LIMIT must be greater than LAB_ITERATION_SOFT_TIME_LIMIT")
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # An unacked message is redelivered after this; it must exceed the hard time limit
    # or Redis would hand a still-running iteration to a second worker.
    "visibility_timeout": LAB_ITERATION_TIME_LIMIT * 2,
}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The embedded broker: messages are files under var/broker, so no server is needed.
    BROKER_DIR = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (BROKER_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS.update(
        {
            "data_folder_in": str(BROKER_DIR / "queue"),
            "data_folder_out": str(BROKER_DIR / "queue"),
            "processed_folder": str(BROKER_DIR / "processed"),
            "control_folder": str(BROKER_DIR / "control"),
            "store_processed": False,
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

# --- Lab behaviour --------------------------------------------------------------------
LAB_MAX_CONCURRENT_ITERATIONS = _positive_int("LAB_MAX_CONCURRENT_ITERATIONS", 4)
# A queued iteration not started after this long has its task sent again (lost message).
LAB_REQUEUE_AFTER_SECONDS = _positive_int("LAB_REQUEUE_AFTER_SECONDS", 600)
LAB_DEFAULT_CANDIDATES = _positive_int("LAB_DEFAULT_CANDIDATES", 8)
LAB_CONSOLE_BASE_URL = env.str("LAB_CONSOLE_BASE_URL", default="http://127.0.0.1:8000")

# --- Alerts and notifications (rules documented in alerts/monitor.py) --------------------
# A repeat of an open alert notifies again only after this long.
LAB_ALERT_REPEAT_INTERVAL_MINUTES = _positive_int("LAB_ALERT_REPEAT_INTERVAL_MINUTES", 60)
# PERFORMANCE_DEGRADATION: relative win-rate drop over the last 3 iterations ...
LAB_ALERT_WIN_RATE_DROP = _float_in("LAB_ALERT_WIN_RATE_DROP", 0.10, 0.0, 1.0)
# ... or the objective below its recent average by this margin (relative) ...
LAB_ALERT_OBJECTIVE_MARGIN = _float_in("LAB_ALERT_OBJECTIVE_MARGIN", 0.25, 0.0, 10.0)
# ... relative to max(|average|, this floor), so averages near 0 do not fire on noise ...
LAB_ALERT_OBJECTIVE_FLOOR = _float_in("LAB_ALERT_OBJECTIVE_FLOOR", 0.1, 1e-6, 100.0)
# ... where "recent" is this many succeeded iterations before the latest.
LAB_ALERT_RECENT_WINDOW = _positive_int("LAB_ALERT_RECENT_WINDOW", 5)
# No degradation alert (and so no demotion) rests on fewer trades than this, on either side ...
LAB_ALERT_MIN_TRADES = _positive_int("LAB_ALERT_MIN_TRADES", 20)
# ... nor on a drop that a one-sided test at this level cannot tell from noise.
LAB_ALERT_SIGNIFICANCE = _float_in("LAB_ALERT_SIGNIFICANCE", 0.01, 1e-6, 0.5)
# ERROR alerts become CRITICAL after this many consecutive failures.
LAB_ALERT_ERROR_CRITICAL_AFTER = _positive_int("LAB_ALERT_ERROR_CRITICAL_AFTER", 3)
LAB_ALERT_MILESTONES = tuple(env.list("LAB_ALERT_MILESTONES", cast=int, default=[10, 50, 100, 500]))
if any(m <= 0 for m in LAB_ALERT_MILESTONES):
    raise ImproperlyConfigured(f"LAB_ALERT_MILESTONES must be positive integers, got {LAB_ALERT_MILESTONES}")
LAB_ALERT_MILESTONE_WIN_RATE = _float_in("LAB_ALERT_MILESTONE_WIN_RATE", 0.70, 0.0, 1.0)
LAB_ALERT_MILESTONE_MIN_TRADES = _positive_int("LAB_ALERT_MILESTONE_MIN_TRADES", 10)
LAB_WEBHOOK_TIMEOUT_SECONDS = env.float("LAB_WEBHOOK_TIMEOUT_SECONDS", default=5.0)
LAB_WEBHOOK_MAX_ATTEMPTS = _positive_int("LAB_WEBHOOK_MAX_ATTEMPTS", 5)
LAB_WEBHOOK_BACKOFF_SECONDS = env.float("LAB_WEBHOOK_BACKOFF_SECONDS", default=2.0)
# Webhooks may only reach public addresses unless this is on (tests, on-premises receivers).
LAB_WEBHOOK_ALLOW_PRIVATE = _bool("LAB_WEBHOOK_ALLOW_PRIVATE", False)

# --- Graduation and paper trading ----------------------------------------------------
# Lab-wide overrides of the graduation rules' defaults (declared once, in graduation/criteria.py):
# each LAB_GRAD_<NAME> variable set overrides the rule <name>, e.g. LAB_GRAD_MIN_DSR=0.9 or
# LAB_GRAD_MIN_PROBABILISTIC_SHARPE=null. Values are JSON numbers, true/false or null; the rules
# check them at start-up (an unknown name or a bad value stops it, naming each).
def _grad_value(name, raw):
    try:
        return json.loads(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r}: must be a number, true, false or null") from None


LAB_GRADUATION_CRITERIA = {
    key.removeprefix("LAB_GRAD_").lower(): _grad_value(key, raw)
    for key, raw in sorted(os.environ.items()) if key.startswith("LAB_GRAD_")
}
# Paper -> live evidence: at least this many bars traded on paper and this many closed trades.
LAB_PAPER_MIN_BARS = _positive_int("LAB_PAPER_MIN_BARS", 60)
LAB_PAPER_MIN_TRADES = _positive_int("LAB_PAPER_MIN_TRADES", 3)
# Replay feed (make run): hold back the newest bars of the bundled datasets and release
# this many per instrument every LAB_REPLAY_INTERVAL_SECONDS, so paper agents trade visibly.
LAB_REPLAY_ENABLED = _bool("LAB_REPLAY_ENABLED", False)
LAB_REPLAY_HOLD_BACK_BARS = _positive_int("LAB_REPLAY_HOLD_BACK_BARS", 250)
LAB_REPLAY_BARS_PER_TICK = _positive_int("LAB_REPLAY_BARS_PER_TICK", 1)
LAB_REPLAY_INTERVAL_SECONDS = _positive_int("LAB_REPLAY_INTERVAL_SECONDS", 30)
LAB_PAPER_INTERVAL_SECONDS = _positive_int("LAB_PAPER_INTERVAL_SECONDS", 30)
# Bar feeds from exchanges (agents.market.feeds.ccxt_feed): request timeout, retries of network
# errors, timeouts and 429s with exponential backoff (capped), candles per request, pages per poll.
LAB_FEED_TIMEOUT_SECONDS = _positive_int("LAB_FEED_TIMEOUT_SECONDS", 10)
LAB_FEED_MAX_RETRIES = env.int("LAB_FEED_MAX_RETRIES", default=4)
LAB_FEED_BACKOFF_SECONDS = env.float("LAB_FEED_BACKOFF_SECONDS", default=1.0)
LAB_FEED_MAX_BACKOFF_SECONDS = env.float("LAB_FEED_MAX_BACKOFF_SECONDS", default=30.0)
LAB_FEED_PAGE_LIMIT = _positive_int("LAB_FEED_PAGE_LIMIT", 500)
LAB_FEED_MAX_PAGES = _positive_int("LAB_FEED_MAX_PAGES", 20)
if not 0 <= LAB_FEED_MAX_RETRIES <= 20:
    raise ImproperlyConfigured(f"LAB_FEED_MAX_RETRIES must be from 0 to 20, got {LAB_FEED_MAX_RETRIES}")
if not 0 <= LAB_FEED_BACKOFF_SECONDS <= LAB_FEED_MAX_BACKOFF_SECONDS <= 3600:
    raise ImproperlyConfigured("LAB_FEED_BACKOFF_SECONDS and LAB_FEED_MAX_BACKOFF_SECONDS must satisfy "
                               "0 <= backoff <= max backoff <= 3600")

# --- LLM ------------------------------------------------------------------------------
ANTHROPIC_API_KEY = env.str("ANTHROPIC_API_KEY", default="")
# For a gateway or proxy in front of the API; empty = the SDK's default endpoint.
ANTHROPIC_BASE_URL = env.str("ANTHROPIC_BASE_URL", default="")
ANTHROPIC_MODEL = env.str("LAB_CLAUDE_MODEL", default="claude-sonnet-4-6")
ANTHROPIC_TIMEOUT_SECONDS = env.float("LAB_CLAUDE_TIMEOUT", default=60.0)
ANTHROPIC_MAX_RETRIES = env.int("LAB_CLAUDE_MAX_RETRIES", default=2)
ANTHROPIC_MAX_TOKENS = _positive_int("LAB_CLAUDE_MAX_TOKENS", 4096)
LAB_LLM_DAILY_CALLS = _positive_int("LAB_LLM_DAILY_CALLS", 500)
LAB_LLM_DAILY_TOKENS = _positive_int("LAB_LLM_DAILY_TOKENS", 5_000_000)

# --- Logging --------------------------------------------------------------------------
LAB_LOG_FORMAT = env.str("LAB_LOG_FORMAT", default="text")
if LAB_LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LAB_LOG_FORMAT must be 'text' or 'json', got {LAB_LOG_FORMAT!r}")
LOG_LEVEL = env.str("LAB_LOG_LEVEL", default="INFO").upper()
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
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"level": "INFO"},
        "optuna": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
    },
}

# --- Observability: /health, /metrics, heartbeats (config/observability/, alerts/heartbeat.py)
# Bearer token letting a scraper read /metrics from any address; empty = allow-list only.
LAB_METRICS_TOKEN = env.str("LAB_METRICS_TOKEN", default="")
# Addresses or networks (REMOTE_ADDR) that may read /metrics without the token.
LAB_METRICS_ALLOW_IPS = env.list("LAB_METRICS_ALLOW_IPS", default=["127.0.0.1", "::1"])
for _ip in LAB_METRICS_ALLOW_IPS:
    try:
        ipaddress.ip_network(_ip, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"LAB_METRICS_ALLOW_IPS: {_ip!r} is not an address or network ({_exc})")
# Beat, or every worker, silent for longer than this: /health 503 and one CRITICAL alert.
LAB_HEARTBEAT_STALE_SECONDS = _positive_int("LAB_HEARTBEAT_STALE_SECONDS", 180)
# How often each worker's main process records its heartbeat; well under the stale limit.
LAB_HEARTBEAT_INTERVAL_SECONDS = _positive_int("LAB_HEARTBEAT_INTERVAL_SECONDS", 30)
if LAB_HEARTBEAT_INTERVAL_SECONDS * 2 > LAB_HEARTBEAT_STALE_SECONDS:
    raise ImproperlyConfigured("LAB_HEARTBEAT_INTERVAL_SECONDS must be at most half of LAB_HEARTBEAT_STALE_SECONDS")
# Timeout of the database and broker checks of /health (seconds).
LAB_HEALTH_TIMEOUT_SECONDS = env.float("LAB_HEALTH_TIMEOUT_SECONDS", default=2.0)
if LAB_HEALTH_TIMEOUT_SECONDS <= 0:
    raise ImproperlyConfigured("LAB_HEALTH_TIMEOUT_SECONDS must be positive")
# Multi-process metrics: every process (web, worker children, beat) writes its counters under
# this directory and /metrics merges them. Must be set before prometheus_client is imported
# (here); wipe it when the whole service restarts. LAB_METRICS_MULTIPROCESS=0: in-process only.
if _bool("LAB_METRICS_MULTIPROCESS", True):
    if XDIST_WORKER:  # inherited from the controlling test process: this one needs its own
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(VAR_DIR / "prometheus")
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "prometheus"))
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
# Load balancers probe /health over plain HTTP behind the TLS proxy: no redirect to https.
SECURE_REDIRECT_EXEMPT = [r"^health/?$"]
# A worker on another host than the web serves its metrics on this port (0 = off) and address.
LAB_WORKER_METRICS_PORT = env.int("LAB_WORKER_METRICS_PORT", default=0)
if not 0 <= LAB_WORKER_METRICS_PORT <= 65535:
    raise ImproperlyConfigured(f"LAB_WORKER_METRICS_PORT must be a TCP port or 0, got {LAB_WORKER_METRICS_PORT}")
LAB_WORKER_METRICS_ADDR = env.str("LAB_WORKER_METRICS_ADDR", default="127.0.0.1")

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="lab@localhost")

# --- Beat (after every setting it reads) -------------------------------------------
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
    # Beat's own heartbeat (recorded by beat as it publishes) and proof a worker answers.
    "lab-heartbeat": {"task": "alerts.heartbeat.heartbeat_task", "schedule": 60.0, "options": {"expires": 55}},
}
# Imported by every worker and beat: heartbeat task and signals, log context, metrics hooks, beat's
# signal-safe shutdown.
CELERY_IMPORTS = ("alerts.heartbeat", "config.observability.celery_signals", "config.beat_shutdown")
