"""The REST API: DRF, its throttles' cache, the OpenAPI schema."""

import environ

from config.env import integer, text

# The throttles count in the cache: LAB_CACHE_URL=redis://host:6379/2 shares the counts between web
# processes so the rates hold per user lab-wide; the default counts in each process.
CACHES = {"default": environ.Env().cache_url("LAB_CACHE_URL", default="locmemcache://")}
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
    "PAGE_SIZE": integer("LAB_API_PAGE_SIZE", 50, low=1, high=1000),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.exception_handler.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
        "rest_framework.throttling.ScopedRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": text("LAB_THROTTLE_ANON", "60/min"),
        "user": text("LAB_THROTTLE_USER", "2000/min"),
        "start_work": text("LAB_THROTTLE_START_WORK", "120/min"),
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
        "TournamentStatusEnum": "tournaments.models.TournamentStatus",
    },
}
