"""What a refiner is: given an agent's context, propose candidate parameter sets.

Refiners never touch the database: the learning service gathers a `RefinerContext`,
calls `propose()` outside any transaction (an LLM call can take a minute), then
backtests and stores what comes back. Every returned candidate is already cleaned by
`template.validate`; whatever failed validation is returned in `rejected` with the
reason, so the service can record it.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Protocol, runtime_checkable

from agents.strategies.base import ParamValidationError, StrategyTemplate


@dataclass(frozen=True)
class AgentRef:
    """The peer agent a shared trial came from (agents.evaluation.peer_trials)."""

    id: str
    name: str


@dataclass(frozen=True)
class TriedParams:
    """A parameter set already evaluated; score is its selection score (the objective aggregated
    across the selection folds, higher is better), None when the evaluation failed.

    ``from_agent`` None: this agent's own trial. Otherwise a peer's (warm start): its score is the
    peer's selection score on the peer's own selection data, never this agent's."""

    params: dict
    score: float | None
    from_agent: AgentRef | None = None


def own_trials(history):
    return [tried for tried in history if tried.from_agent is None]


def shared_trials(history):
    return [tried for tried in history if tried.from_agent is not None]


@dataclass(frozen=True)
class RefinerContext:
    """What a refiner may see: the selection data only. Nothing from the sealed test window
    (its metrics, trades or any score computed on it) is ever put here."""

    template: StrategyTemplate
    current_params: dict
    fold_metrics: list  # the current version's metrics on each selection fold, oldest first
    selection_score: float  # their aggregate (agents.evaluation.backtests.selection_score)
    objective: str
    history: list[TriedParams]  # the agent's own, oldest first, then the peers' it was given (best first)
    recent_trades: list[dict]  # of the last selection fold: side, entry_time, exit_time, return_pct
    n_candidates: int
    seed: int  # seed + iteration number: same context, same Optuna proposals
    instrument: str = ""
    # {schema_key(params): latest score} of the history's sets, when the caller keeps it
    # (agents.evaluation.trial_history); None: derived from ``history``, one pass.
    evaluated: Mapping | None = None
    # A template with its own refiner (an ensemble, agents.refiners.ensemble_refiner): its params
    # rebuilt from the lab's current state (None: nothing new) and why not, read by the learning
    # service so that the refiner stays off the database. None for the other templates.
    refreshed: tuple | None = None


@dataclass(frozen=True)
class Candidate:
    params: dict
    rationale: str
    source: str  # "optuna" | "claude"


@dataclass(frozen=True)
class RejectedProposal:
    params: object  # as received: may be anything an LLM wrote
    reason: str


@dataclass
class RefinerResult:
    candidates: list[Candidate]
    rejected: list[RejectedProposal]
    refiner: str
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    fallback_reason: str = ""


@runtime_checkable
class Refiner(Protocol):
    name: str

    def propose(self, ctx: RefinerContext) -> RefinerResult: ...


class RefinerError(Exception):
    """The refiner produced nothing usable. `rejected` and the token counts are kept so
    the caller can still record what the attempt cost and why it failed."""

    def __init__(self, message, *, rejected=(), model="", input_tokens=0, output_tokens=0):
        super().__init__(message)
        self.rejected = list(rejected)
        self.model = model
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens


class RefinerUnavailable(RefinerError):
    """Transient: rate limit, server error, timeout or network failure after the SDK's own
    retries. The caller falls back to Optuna."""


class RefinerAuthError(RefinerError):
    """The API key is missing or rejected: retrying or falling back would hide the problem."""


# Helpers shared by the refiners ------------------------------------------------------


def _frozen(value):
    """A value of a parameter set as a hashable key: floats to 12 digits, lists and objects (an
    ensemble's frozen members) as tuples of their frozen items."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return round(value, 12)
    if isinstance(value, list | tuple):
        return tuple(_frozen(item) for item in value)
    if isinstance(value, Mapping):
        return tuple(sorted((name, _frozen(item)) for name, item in value.items()))
    return value


def params_key(params: Mapping) -> tuple:
    """A hashable identity for a cleaned parameter set (floats compared to 12 digits, so
    values that went through JSON or rounding still match)."""
    return tuple(sorted((name, _frozen(value)) for name, value in params.items()))


def schema_key(template: StrategyTemplate):
    """A function of a stored parameter set giving `params_key` of its cleaned form when it is
    valid (missing params read as their defaults, params the template no longer has ignored),
    without validating it: cheap enough to key a long history."""
    specs = sorted(template.params, key=lambda spec: spec.name)
    names, defaults = [spec.name for spec in specs], [spec.default for spec in specs]
    floats = [i for i, spec in enumerate(specs) if spec.type == "float"]
    # Values that are not numbers or booleans (an ensemble's members): frozen like params_key does.
    nested = [i for i, spec in enumerate(specs) if spec.type not in ("int", "float", "bool")]

    # In C (a Python loop per value costs 3x more): itemgetter for a plain dict holding every name
    # (a stored set, nearly always), params.get with the defaults otherwise.
    every = itemgetter(*names) if len(names) > 1 else None

    def key(params: Mapping) -> tuple:
        try:
            values = list(every(params)) if every is not None and type(params) is dict else None
        except KeyError:  # a set stored before a param was added: read as its default
            values = None
        if values is None:
            values = list(map(params.get, names, defaults))
        for i in floats:
            if type(values[i]) is float:
                values[i] = round(values[i], 12)
        for i in nested:
            values[i] = _frozen(values[i])
        return tuple(zip(names, values, strict=True))

    return key


def clean_or_none(template: StrategyTemplate, params) -> dict | None:
    """`template.validate(params)`, or None when the set is not valid (any more)."""
    try:
        return template.validate(params)
    except ParamValidationError:
        return None


@dataclass
class CandidateCollector:
    """Accepts proposals in order, keeping only valid, new and distinct ones.

    "New" means not the current params and not anything already evaluated: re-proposing
    them would spend a backtest to learn nothing.
    """

    template: StrategyTemplate
    current_params: Mapping
    history: list
    limit: int
    evaluated: Mapping | None = None  # RefinerContext.evaluated
    candidates: list = field(default_factory=list)
    rejected: list = field(default_factory=list)

    def __post_init__(self):
        current = clean_or_none(self.template, self.current_params)
        self._current_key = params_key(current) if current is not None else None
        self._evaluated = self.evaluated
        if self._evaluated is None:
            # Keyed without validating each stored set (a stored set that no longer validates
            # cannot equal a cleaned proposal anyway); still ~3 us a trial, so the lab passes
            # the keys it keeps instead.
            key = schema_key(self.template)
            # Only the agent's own: a peer's set was scored on the peer's data, so proposing it
            # here is a new evaluation, the warm start's point.
            self._evaluated = {key(tried.params): tried.score for tried in own_trials(self.history)
                               if type(tried.params) is dict or isinstance(tried.params, Mapping)}
        self._seen = {}

    @property
    def full(self):
        return len(self.candidates) >= self.limit

    def why_not(self, clean: Mapping) -> str:
        """Why a cleaned set cannot be proposed, or "" when it can."""
        key = params_key(clean)
        if key == self._current_key:
            return "same as the current parameters"
        if key in self._seen:
            return f"duplicate of candidate #{self._seen[key]}"
        if key in self._evaluated:
            score = self._evaluated[key]
            return f"already evaluated (score {score:.4g})" if score is not None else "already evaluated (failed)"
        return ""

    def add(self, clean: dict, rationale: str, source: str):
        self._seen[params_key(clean)] = len(self.candidates) + 1
        self.candidates.append(Candidate(params=clean, rationale=rationale, source=source))

    def reject(self, params, reason: str):
        self.rejected.append(RejectedProposal(params=params, reason=reason))
