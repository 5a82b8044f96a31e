"""Notification channel routes under /api/; every path works with and without a trailing slash."""

from rest_framework.routers import SimpleRouter

from alerts.api.channel_views import NotificationChannelViewSet


class OptionalSlashRouter(SimpleRouter):
    # SimpleRouter (no API root view): the agents router already serves /api/ itself.
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("notification-channels", NotificationChannelViewSet, basename="notification-channel")

urlpatterns = router.urls
