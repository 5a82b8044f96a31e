"""The operator console: the Django admin of the lab's agents and records.

- agents.admin.agent: the agent changelist (columns, filters, actions) and the agent page with
  the console's panels and control views (agents.console).
- agents.admin.records: instruments, bars, versions, iterations, refinements, trades, activity.

The admin index shows the lab dashboard (agents.console.dashboard): the default site's index view
is wrapped once here to hand the template its numbers.
"""

from django.contrib import admin

from agents.admin.agent import TradingAgentAdmin, apply_autonomy
from agents.admin.records import (
    ActivityLogAdmin,
    InstrumentAdmin,
    LearningIterationAdmin,
    PriceBarAdmin,
    RefinementAdmin,
    StrategyVersionAdmin,
    TradeAdmin,
)
from agents.console.dashboard import dashboard

__all__ = [
    "ActivityLogAdmin",
    "InstrumentAdmin",
    "LearningIterationAdmin",
    "PriceBarAdmin",
    "RefinementAdmin",
    "StrategyVersionAdmin",
    "TradeAdmin",
    "TradingAgentAdmin",
    "apply_autonomy",
    "install_dashboard",
]


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
