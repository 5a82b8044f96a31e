"""Admin of the lab's records: instruments, bars, versions, iterations, refinements, trades, activity.

The agent page and the dashboard are the console app's (console.admin), which composes every app.
"""

from agents.admin.records import (
    ActivityLogAdmin,
    InstrumentAdmin,
    LearningIterationAdmin,
    PriceBarAdmin,
    RefinementAdmin,
    StrategyVersionAdmin,
    TradeAdmin,
)

__all__ = [
    "ActivityLogAdmin",
    "InstrumentAdmin",
    "LearningIterationAdmin",
    "PriceBarAdmin",
    "RefinementAdmin",
    "StrategyVersionAdmin",
    "TradeAdmin",
]
