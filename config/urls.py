from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config.observability.views import health_view, metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    # Probes and scrapes answer with or without a trailing slash (config/observability/views.py).
    path("health", health_view, name="health"),
    path("health/", health_view),
    path("metrics", metrics_view, name="metrics"),
    path("metrics/", metrics_view),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    # Alerts first: its explicit learning-agents/... alert routes sit beside the agents router.
    path("api/", include("alerts.api.urls")),
    path("api/", include("alerts.api.channel_urls")),
    path("api/", include("graduation.api.urls")),
    path("api/", include("tournaments.api.urls")),
    path("api/", include("agents.api.urls")),
]

# JSON instead of Django's HTML pages under /api/ (config/errors.py).
handler404 = "config.errors.not_found"
handler500 = "config.errors.server_error"
