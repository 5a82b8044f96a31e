"""Choosing a refiner, and the one fallback rule: Claude unavailable -> Optuna."""

import logging

from django.conf import settings

from .base import Refiner, RefinerAuthError, RefinerContext, RefinerError, RefinerResult, RefinerUnavailable
from .ensemble_refiner import EnsembleRefiner
from .optuna_refiner import OptunaRefiner

log = logging.getLogger(__name__)

CHOICES = ("auto", "optuna", "claude")
# Templates whose candidates are not a search of their schema name their own refiner
# (StrategyTemplate.refiner); the agent's `refiner` setting is then not read.
TEMPLATE_REFINERS = {EnsembleRefiner.name: EnsembleRefiner}


def get_refiner(choice: str, *, template=None, api_key_configured: bool | None = None) -> Refiner:
    """The refiner for an agent's `refiner` field, or the one its ``template`` names.

    "auto" is Claude when ANTHROPIC_API_KEY is set, else Optuna; "claude" without a key is
    a RefinerAuthError (the operator asked for something this deployment cannot do).
    `api_key_configured` overrides the settings check (tests, dry runs).
    """
    if template is not None and template.refiner:
        return TEMPLATE_REFINERS[template.refiner]()
    if api_key_configured is None:
        api_key_configured = bool(settings.ANTHROPIC_API_KEY)
    choice = (choice or "auto").strip().lower()
    if choice not in CHOICES:
        raise RefinerError(f"unknown refiner {choice!r}: expected one of {', '.join(CHOICES)}")
    if choice == "claude" and not api_key_configured:
        raise RefinerAuthError(
            "ANTHROPIC_API_KEY is not set: the Claude refiner needs an API key "
            "(set it, or choose the 'optuna' or 'auto' refiner)"
        )
    if choice == "claude" or (choice == "auto" and api_key_configured):
        from .claude_refiner import ClaudeRefiner  # the SDK is only imported when used

        return ClaudeRefiner()
    return OptunaRefiner()


def propose_with_fallback(refiner: Refiner, ctx: RefinerContext) -> RefinerResult:
    """`refiner.propose(ctx)`; when an LLM refiner is only temporarily unavailable (rate
    limit, 5xx, timeout: the SDK already retried), Optuna proposes instead and the result
    says why in `fallback_reason`. Auth and other errors propagate."""
    try:
        return refiner.propose(ctx)
    except RefinerUnavailable as exc:
        if refiner.name == "optuna":
            raise
        log.warning("refiner %s unavailable, falling back to optuna: %s", refiner.name, exc)
        result = OptunaRefiner().propose(ctx)
        result.fallback_reason = f"{refiner.name} unavailable: {exc}"
        return result
