"""Refiners propose candidate parameter sets for a strategy (Optuna TPE or Claude).

Import the concrete refiners from their modules, or get one with `get_refiner(choice)`;
this package only loads optuna / anthropic when a refiner is actually built.
"""

from .base import (
    Candidate,
    Refiner,
    RefinerAuthError,
    RefinerContext,
    RefinerError,
    RefinerResult,
    RefinerUnavailable,
    RejectedProposal,
    TriedParams,
)
from .factory import CHOICES, get_refiner, propose_with_fallback

__all__ = [
    "CHOICES",
    "Candidate",
    "Refiner",
    "RefinerAuthError",
    "RefinerContext",
    "RefinerError",
    "RefinerResult",
    "RefinerUnavailable",
    "RejectedProposal",
    "TriedParams",
    "get_refiner",
    "propose_with_fallback",
]
