"""API routes; every path works with and without a trailing slash."""

from rest_framework.routers import DefaultRouter

from agents.api.views import InstrumentViewSet, LearningAgentViewSet, StrategyViewSet


class OptionalSlashRouter(DefaultRouter):
    # No `.json`-style suffix routes: the actions do not take a `format` argument (a suffix was a
    # 500), and `?format=json` or the Accept header already choose the renderer.
    include_format_suffixes = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("learning-agents", LearningAgentViewSet, basename="learning-agent")
router.register("strategies", StrategyViewSet, basename="strategy")
router.register("instruments", InstrumentViewSet, basename="instrument")

urlpatterns = router.urls
