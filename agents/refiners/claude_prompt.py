"""The Claude refiner's prompt: what the model is told about the strategy and the search.

Only the selection data reaches it (agents.refiners.base.RefinerContext): fold metrics, the
selection score, the history's selection scores and the last fold's trades.
"""

import json
import math
from collections.abc import Mapping

from agents.evaluation.numbers import finite_or_none

from .base import RefinerContext, own_trials, shared_trials

HISTORY_BEST = 10  # best-scoring sets shown to the model
HISTORY_RECENT = 20  # plus the most recent ones (the two lists overlap at most fully)
PEERS_SHOWN = 20  # peers' trials (warm start), best first; the caller already bounds them
TRADES_SHOWN = 10

SYSTEM_PROMPT = """\
You are a quantitative researcher tuning the parameters of a systematic trading strategy.
You are given the strategy, its parameter schema with hard bounds, the current parameters
with their metrics on each of several consecutive walk-forward folds of the data, their
selection score (the mean of the fold objectives minus one standard error of that mean),
every parameter set already tried with its selection score, and recent trades.

Propose new parameter sets likely to raise the selection score. Newer data, which you never
see, decides whether a change is kept, so prefer robust changes over fitting noise: a set
that shines in one fold and fails in the others is fitting noise. Use the history: move
towards what scored well, away from what failed, and do not repeat a set already tried or
the current one.

Rules for every candidate:
- give a value for every parameter in the schema and no other key;
- integers must be integers, booleans true or false;
- every value within its [min, max] bounds, and every cross-parameter rule respected;
- a short rationale (one to three sentences) citing the evidence behind the change.
Answer only with the JSON object the output schema describes."""


# Schema -----------------------------------------------------------------------------


# Prompt -----------------------------------------------------------------------------


def _jsonable(value):
    """Plain JSON values: numpy scalars to Python, NaN/inf to None, anything else to str."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if hasattr(value, "item") and not isinstance(value, float):  # numpy scalar
        return _jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def _dump(value):
    """Compact JSON; a list gets one item per line (readable, and cheaper than indenting)."""
    value = _jsonable(value)
    if isinstance(value, list):
        return "[\n" + ",\n".join(json.dumps(item) for item in value) + "\n]" if value else "[]"
    return json.dumps(value)


def _history_rows(history):
    """Chronological rows: the best-scoring sets and the most recent ones, bounded."""
    indexed = list(enumerate(history, start=1))
    scored = [(i, t) for i, t in indexed if finite_or_none(t.score) is not None]
    best = sorted(scored, key=lambda it: finite_or_none(it[1].score), reverse=True)[:HISTORY_BEST]
    chosen = {i for i, _ in best} | {i for i, _ in indexed[-HISTORY_RECENT:]}
    best_ids = {i for i, _ in best}
    rows = []
    for i, tried in indexed:
        if i in chosen:
            row = {"trial": i, "score": finite_or_none(tried.score), "params": tried.params}
            if i in best_ids:
                row["top"] = True
            if row["score"] is None:
                row["failed"] = True
            rows.append(row)
    return rows


def _peer_rows(shared):
    return [{"agent": tried.from_agent.name, "score": finite_or_none(tried.score), "params": tried.params}
            for tried in shared[:PEERS_SHOWN]]


def _peer_section(ctx):
    shared = shared_trials(ctx.history)
    if not shared:
        return []
    return [
        f"Parameter sets tried by peer agents (the same template, on {ctx.instrument or 'this instrument'} or an "
        f"instrument the owner marked as related): {len(shared)}, the {min(len(shared), PEERS_SHOWN)} best shown, "
        "best first. Each score is the peer's selection score on its own data, not on this agent's: a hint "
        "of where to look, not evidence; proposing a peer's set is allowed (it has not been evaluated here):\n"
        + _dump(_peer_rows(shared))
    ]


def _trades_summary(trades):
    returns = [finite_or_none(t.get("return_pct")) for t in trades if isinstance(t, Mapping)]
    returns = [r for r in returns if r is not None]
    summary = {"count": len(trades)}
    if returns:
        wins = sum(1 for r in returns if r > 0)
        summary.update(
            {
                "win_rate": round(wins / len(returns), 4),
                "mean_return_pct": round(sum(returns) / len(returns), 6),
                "best_return_pct": max(returns),
                "worst_return_pct": min(returns),
            }
        )
    sides = [t.get("side") for t in trades if isinstance(t, Mapping) and t.get("side")]
    if sides:
        summary["by_side"] = {side: sides.count(side) for side in sorted(set(map(str, sides)))}
    summary["last_trades"] = list(trades[-TRADES_SHOWN:])
    return summary


def build_prompt(ctx: RefinerContext) -> str:
    template = ctx.template
    n = ctx.n_candidates
    parameters = []
    for spec in template.params:
        row = {"name": spec.name, "type": spec.type, "default": spec.default}
        if spec.type != "bool":
            row.update({"min": spec.min, "max": spec.max})
        row["description"] = spec.description
        parameters.append(row)
    rules = [f"{names[0]}: {message}" for message, _predicate, names in template.constraints]
    own = own_trials(ctx.history)
    scored = [finite_or_none(t.score) for t in own]
    best = max((s for s in scored if s is not None), default=None)
    sections = [
        f"Strategy template: {template.key} ({template.name})\n{template.description}",
        f"Instrument: {ctx.instrument or 'unspecified'}",
        f"Parameters (hard bounds, inclusive):\n{_dump(parameters)}",
        "Cross-parameter rules:\n" + ("\n".join(f"- {r}" for r in rules) if rules else "- none"),
        f"Objective, per fold: {ctx.objective}; the selection score aggregates it across folds",
        f"Current parameters:\n{_dump(ctx.current_params)}",
        f"Current metrics on each fold, oldest first:\n{_dump(ctx.fold_metrics)}",
        f"Current selection score: {ctx.selection_score:.6g}",
        (
            f"Parameter sets already evaluated by this agent: {len(own)} "
            f"({sum(s is None for s in scored)} failed; best selection score: "
            f"{'n/a' if best is None else f'{best:.6g}'}). Shown below: the {HISTORY_BEST} best "
            f"(top: true) and the {HISTORY_RECENT} most recent, oldest first:\n{_dump(_history_rows(own))}"
        ),
        *_peer_section(ctx),
        "Recent trades of the current version (return_pct is a fraction):\n"
        + _dump(_trades_summary(ctx.recent_trades)),
        (f"Propose exactly {n} new, distinct parameter sets, each with every parameter above and a short rationale."),
    ]
    return "\n\n".join(sections)


# Time bound --------------------------------------------------------------------------

# The SDK sleeps whatever a 429's or 5xx's retry-after asks before its next attempt (this
# version: up to 49 days). A longer wait than this is not waited for: the call gives up at
# once and the iteration falls back to Optuna, so it ends well below its soft time limit.
