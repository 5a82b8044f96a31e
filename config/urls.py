from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    # Alerts first: its explicit learning-agents/... alert routes sit beside the agents router.
    path("api/", include("alerts.api.urls")),
    path("api/", include("agents.api.urls")),
]
