"""Tournament routes under /api/; every path works with and without a trailing slash."""

from agents.api.urls import OptionalSlashRouter
from tournaments.api.views import TournamentViewSet

router = OptionalSlashRouter()
router.register("tournaments", TournamentViewSet, basename="tournament")

urlpatterns = router.urls
