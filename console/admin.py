"""The operator console in the Django admin: the agent admin and the dashboard on the index.

The admin index shows the lab dashboard (console.dashboard): the default site's index view is
wrapped once here to hand the template its numbers.
"""

from django.contrib import admin

from console.agent_admin import TradingAgentAdmin, apply_autonomy
from console.dashboard import dashboard
from console.tournament_admin import TournamentAdmin

__all__ = ["TournamentAdmin", "TradingAgentAdmin", "apply_autonomy", "install_dashboard"]


def install_dashboard(site):
    """Make `site`'s index view pass the lab dashboard to templates/admin/index.html (idempotent)."""
    index = site.index
    if getattr(index, "lab_dashboard", False):
        return

    def dashboard_index(request, extra_context=None):
        return index(request, extra_context={"lab_dashboard": dashboard(request.user), **(extra_context or {})})

    dashboard_index.lab_dashboard = True
    site.index = dashboard_index


admin.site.site_header = "Agent Learning Lab"
admin.site.site_title = "Agent Learning Lab"
admin.site.index_title = "Operator console"
install_dashboard(admin.site)
