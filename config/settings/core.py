"""Django itself: secret, hosts, apps, database, security, static files, email."""

import environ

from config.env import BASE_DIR, boolean, integer, positive_int, secret_key, text, text_list, var_dir

VAR_DIR = var_dir()

SECRET_KEY = secret_key(VAR_DIR)
DEBUG = boolean("DJANGO_DEBUG", False)
ALLOWED_HOSTS = text_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = text_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

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
    "tournaments",
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
    "default": environ.Env().db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'lab.sqlite3'}"),
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
            "timeout": positive_int("LAB_SQLITE_TIMEOUT", 20),
        }
    )
    _db.setdefault("TEST", {})
    # A file (not :memory:) so a real Celery worker process in tests sees the same data.
    _db["TEST"].setdefault("NAME", str(VAR_DIR / "test_lab.sqlite3"))
else:
    _db.setdefault("CONN_MAX_AGE", integer("DATABASE_CONN_MAX_AGE", 60, low=0))
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
TIME_ZONE = text("LAB_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

LOGIN_URL = "admin:login"

# --- Security (production values switch on with DEBUG off behind HTTPS) ----------------
LAB_HTTPS = boolean("LAB_HTTPS", False)
SESSION_COOKIE_SECURE = LAB_HTTPS
CSRF_COOKIE_SECURE = LAB_HTTPS
SECURE_SSL_REDIRECT = LAB_HTTPS
SECURE_HSTS_SECONDS = 31536000 if LAB_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = LAB_HTTPS
SECURE_HSTS_PRELOAD = LAB_HTTPS
LAB_BEHIND_PROXY = boolean("LAB_BEHIND_PROXY", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if LAB_BEHIND_PROXY else None
# Load balancers probe /health over plain HTTP behind the TLS proxy: no redirect to https.
SECURE_REDIRECT_EXEMPT = [r"^health/?$"]
DATA_UPLOAD_MAX_MEMORY_SIZE = positive_int("LAB_MAX_BODY_BYTES", 1_000_000)
# Bar file uploads (POST /api/instruments/<symbol>/bars, the console's Import bars page) may be
# larger than other bodies; files over LAB_IMPORT_INLINE_MAX_BYTES are imported by a worker.
LAB_MAX_UPLOAD_BYTES = positive_int("LAB_MAX_UPLOAD_BYTES", 50_000_000)
LAB_IMPORT_INLINE_MAX_BYTES = positive_int("LAB_IMPORT_INLINE_MAX_BYTES", 1_000_000)

EMAIL_BACKEND = text("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = text("DEFAULT_FROM_EMAIL", "lab@localhost")
