"""What a strategy template is: a parameter schema with bounds and a vectorised signal.

A template maps bars + params to a target position per bar in [-1, 1], decided on that
bar's close using only data up to it; the engine fills it at the next bar's open.
"""

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from agents.market.bars import Bars
from agents.strategies import indicators


class ParamValidationError(ValueError):
    """Raised with every violation, keyed by parameter name."""

    def __init__(self, errors):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: str  # "int" | "float" | "bool"
    default: object
    min: float | None = None
    max: float | None = None
    description: str = ""

    def as_schema(self):
        out = {"type": self.type, "default": self.default, "description": self.description}
        if self.type != "bool":
            out.update({"min": self.min, "max": self.max})
        return out

    def check(self, value):
        """The cleaned value, or raise ValueError naming the rule."""
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            raise ValueError("must be a boolean (true or false)")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a number ({self.type})")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        if self.type == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError("must be an integer")
            value = int(value)
        else:
            value = float(value)
        if self.min is not None and value < self.min:
            raise ValueError(f"must be >= {self.min}")
        if self.max is not None and value > self.max:
            raise ValueError(f"must be <= {self.max}")
        return value


# Options every template shares; the engine applies stops, the registry applies long_only.
COMMON_PARAMS = (
    ParamSpec("long_only", "bool", True, description="Only long positions; short signals go flat."),
    ParamSpec("stop_loss", "float", 0.0, 0.0, 0.5, "Exit when a trade loses this fraction (0 = off)."),
    ParamSpec("take_profit", "float", 0.0, 0.0, 5.0, "Exit when a trade gains this fraction (0 = off)."),
)


@dataclass(frozen=True)
class StrategyTemplate:
    key: str
    name: str
    description: str
    own_params: tuple[ParamSpec, ...]
    signal: Callable[[Bars, Mapping], np.ndarray]
    # Cross-parameter rules, e.g. fast < slow: (message, predicate on cleaned params, param names).
    constraints: tuple = field(default_factory=tuple)
    # The signal reads highs and lows: meaningless on a close-only instrument (no intrabar range).
    needs_intrabar_range: bool = False
    # "" : the agent's refiner searches the schema. Otherwise the one refiner that proposes for this
    # template (agents.refiners.factory), e.g. an ensemble's candidates are its members' versions.
    refiner: str = ""

    @property
    def params(self):
        return self.own_params + COMMON_PARAMS

    def spec(self, name):
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def defaults(self):
        return {p.name: p.default for p in self.params}

    def schema(self):
        return {p.name: p.as_schema() for p in self.params}

    def validate(self, params, *, fill_defaults=True):
        """Cleaned params; raises ParamValidationError listing every violation by name."""
        if not isinstance(params, Mapping):
            raise ParamValidationError({"params": "must be an object of parameter values"})
        errors = {}
        known = {p.name for p in self.params}
        for name in params:
            if name not in known:
                errors[name] = f"unknown parameter for template '{self.key}' (known: {', '.join(sorted(known))})"
        clean = {}
        for spec in self.params:
            if spec.name in params:
                try:
                    clean[spec.name] = spec.check(params[spec.name])
                except ValueError as exc:
                    errors[spec.name] = str(exc)
            elif fill_defaults:
                clean[spec.name] = spec.default
            else:
                errors[spec.name] = "is required"
        for message, predicate, names in self.constraints:
            # A rule between params is checked once each of them is valid on its own.
            if all(n in clean for n in names) and names[0] not in errors and not predicate(clean):
                errors[names[0]] = message
        if errors:
            raise ParamValidationError(errors)
        return clean

    def range_problems(self, instrument, params):
        """(refusal or None, [warnings]) for running this template on `instrument`.

        A close-only instrument (``has_intrabar_range`` False) has open = high = low = close: a
        template that reads highs and lows is refused, and stops, which the engine judges on a bar's
        low and high, are then judged on closes, which is worth a warning.
        """
        if getattr(instrument, "has_intrabar_range", True):
            return None, []
        symbol = getattr(instrument, "symbol", instrument)
        if self.needs_intrabar_range:
            return (f"template {self.key!r} reads highs and lows, and instrument {symbol} is close-only (no "
                    "intrabar range), so its channels would collapse onto closes; choose a template that reads "
                    "closes only"), []
        warnings = []
        for name in ("stop_loss", "take_profit"):
            if (params or {}).get(name):
                warnings.append(f"{name}: instrument {symbol} is close-only, so the {name.replace('_', '-')} is "
                                "judged on closes, not on intrabar highs and lows, and fills at the next open "
                                "(= that close)")
        return None, warnings

    def target_positions(self, bars, params):
        """Target position per bar in [-1, 1] (long_only clips shorts to flat)."""
        return self._target_into(bars, self.validate(params), np.empty(len(bars)))

    def target_matrix(self, bars, params_list):
        """Target positions of many parameter sets (rows x bars), each row what
        :meth:`target_positions` gives alone; indicators shared between rows are computed once."""
        out = np.empty((len(params_list), len(bars)))
        with indicators.shared():
            for row, params in zip(out, params_list, strict=True):
                self._target_into(bars, self.validate(params), row)
        return out

    def _target_into(self, bars, clean, out):
        """The signal of cleaned params written into ``out`` (a copy: the signal may be a shared,
        read-only indicator), NaN -> 0, then +-inf clipped to the bounds (np.nan_to_num, np.clip)."""
        signal = np.asarray(self.signal(bars, clean), dtype=np.float64)
        if signal.shape != out.shape:
            raise ValueError(f"template {self.key!r}: its signal has shape {signal.shape}, expected {out.shape}")
        out[:] = signal
        nan = np.isnan(out)
        if nan.any():
            out[nan] = 0.0
        return np.clip(out, 0.0 if clean["long_only"] else -1.0, 1.0, out=out)
