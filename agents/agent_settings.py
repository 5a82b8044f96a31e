"""Every setting an owner gives an agent, declared once: name, type, bounds, default, help.

Everything else derives from :data:`AGENT_SETTINGS`: the model's defaults, help texts and
choices (agents.models), the service's validation (agents.services.agents), the API's input
fields (agents.api.setting_fields) and the console form's fields and admin help
(console.forms, console.agent_admin). A new setting is one declaration here plus its model
column and migration.

The derivations read :data:`AGENT_SETTINGS` when they run, not when they are imported, so the
bounds the service enforces, the API documents and the form offers are always the same. An
error names the setting (its key) and says the rule in words: ``must be an integer between 2
and 20``. Rules beyond type and bounds belong to the service that owns them (unique names, no
control characters, a Claude refiner needs a key).

The style follows the gates' rules engine (agents.evaluation.rules).
"""

import math
from dataclasses import dataclass

from django.db import models

from agents.evaluation.numbers import bounded_number

NUMERIC_KINDS = ("float", "int")


class RefinerChoice(models.TextChoices):
    AUTO = "auto", "Auto (Claude with a key, else Optuna)"
    OPTUNA = "optuna", "Optuna"
    CLAUDE = "claude", "Claude"


class Objective(models.TextChoices):
    SHARPE = "sharpe", "Sharpe ratio"
    SORTINO = "sortino", "Sortino ratio"
    CALMAR = "calmar", "Calmar ratio"
    TOTAL_RETURN = "total_return", "Total return"
    PSR = "psr", "Probabilistic Sharpe ratio"


def _plain(number):
    """A bound as people write it: 1000000000000, not 1e+12; 0.05 stays 0.05."""
    if isinstance(number, float) and number.is_integer() and abs(number) < 1e16:
        return str(int(number))
    return str(number)


@dataclass(frozen=True)
class Setting:
    name: str
    kind: str  # "float" | "int" | "text" | "choice" | "bool"
    default: object
    help: str
    group: str  # where the console shows it: "identity" | "learning" | "autonomy"
    low: float = -math.inf  # numbers: inclusive bounds
    high: float = math.inf
    max_length: int | None = None  # text
    choices: type[models.TextChoices] | None = None  # choice

    @property
    def words(self):
        """The rule, as an error says it after "must be"."""
        if self.kind in NUMERIC_KINDS:
            noun = "an integer" if self.kind == "int" else "a number"
            return f"{noun} between {_plain(self.low)} and {_plain(self.high)}"
        if self.kind == "text":
            return f"a string of at most {self.max_length} characters"
        if self.kind == "bool":
            return "true or false"
        return f"one of {', '.join(self.choices.values)}"

    def check(self, value):
        """(clean value, None) or (None, the rule broken)."""
        if self.kind in NUMERIC_KINDS:
            number = bounded_number(value, self.kind, self.low, self.high)
            return (number, None) if number is not None else (None, f"must be {self.words}")
        if self.kind == "text":
            if not isinstance(value, str):
                return None, "must be a string"
            if len(value) > self.max_length:
                return None, f"must be at most {self.max_length} characters (got {len(value)})"
            return value, None
        if self.kind == "bool":
            # Strict: "false" or 0 read as true by bool(); a switch is only ever true or false.
            return (value, None) if isinstance(value, bool) else (None, f"must be {self.words}")
        if isinstance(value, str) and value in self.choices.values:
            return value, None
        return None, f"must be {self.words}"

    def column(self):
        """The model field's options that come from here (agents.models)."""
        options = {"help_text": self.help}
        if self.default is not None:
            options["default"] = self.default
        if self.kind == "text":
            options["max_length"] = self.max_length
        if self.kind == "choice":
            options["choices"] = self.choices.choices
        return options


AGENT_SETTINGS = (
    Setting("name", "text", None, "Unique among your agents.", "identity", max_length=120),
    Setting("description", "text", "", "What the agent is for; free text.", "identity", max_length=5000),
    Setting("refiner", "choice", RefinerChoice.AUTO, "Who proposes the candidates of an iteration.", "learning",
            choices=RefinerChoice),
    Setting("objective", "choice", Objective.SHARPE, "The score an iteration ranks candidates on.", "learning",
            choices=Objective),
    Setting("candidates_per_iteration", "int", 8, "Parameter sets the refiner proposes per iteration.",
            "learning", 1, 32),
    Setting("test_fraction", "float", 0.2, "Share of the newest bars kept as the sealed test window (the exam).",
            "learning", 0.05, 0.5),
    Setting("n_folds", "int", 5, "Walk-forward folds the selection data (all older bars) is cut into.",
            "learning", 2, 20),
    Setting("fee_bps", "float", 1.0, "Fee per side in basis points.", "learning", 0.0, 1000.0),
    Setting("slippage_bps", "float", 1.0, "Slippage per side in basis points.", "learning", 0.0, 1000.0),
    Setting("initial_capital", "float", 100_000.0, "Starting equity of every backtest.", "learning", 1.0, 1e12),
    Setting("random_seed", "int", 42, "Seeds the optimiser so runs are reproducible.", "learning", 0, 2**31 - 1),
    Setting("share_peer_trials", "bool", False,
            "Warm-start the refiner from the trials of your other agents with the same template on this "
            "instrument or a related one; the deflated Sharpe ratio then counts those trials too.",
            "learning"),
    Setting("max_iterations_per_day", "int", 10,
            "Continuous learning queues no more iterations once this many were queued today (any trigger).",
            "autonomy", 1, 1000),
    Setting("min_iteration_gap_minutes", "int", 60,
            "Continuous learning waits this long after an iteration ends before queueing the next.",
            "autonomy", 0, 7 * 24 * 60),
    Setting("convergence_threshold", "float", 0.01,
            "Continuous learning stops once the mean absolute improvement of its last iterations is below this.",
            "autonomy", 0.0, 1.0),
)


def declared():
    """The settings by name, as declared now."""
    return {s.name: s for s in AGENT_SETTINGS}


def setting(name):
    return declared()[name]


def names(group=None):
    """The settings' names in declaration order, optionally of one group."""
    return [s.name for s in AGENT_SETTINGS if group is None or s.group == group]
