"""Claude refiner: asks the Messages API for candidate parameter sets.

Structured output: `messages.create(output_config={"format": {"type": "json_schema",
"schema": ...}})`, the generally-available structured-outputs parameter of this SDK
(2.x; no beta header). The API then constrains decoding to the schema, so the answer is
parseable JSON with the required keys, the right JSON types and no extra properties.

The API refuses numeric constraints in such a schema (400 "property 'minimum' is not
supported"), so the schema is built with `minimum`/`maximum` (see `output_schema`) and
passed through the SDK's `anthropic.transform_schema`, which moves every unsupported
keyword into the property's description, where the model still reads it. Bounds and
cross-parameter rules are therefore *asked for*, not guaranteed: every candidate is
untrusted input and goes through `template.validate`; what fails is returned in
`rejected` with the reason naming the field.

Retries are the SDK's (`max_retries`, honouring `retry-after` up to MAX_RETRY_WAIT_SECONDS:
a longer one is not waited for, see `call_budget_seconds`); what still fails is mapped
onto the refiner errors: auth -> RefinerAuthError, transient -> RefinerUnavailable (the
caller falls back to Optuna), anything else -> RefinerError. The API key never appears in
a message: errors are re-raised `from None` and their text is scrubbed.
"""

import email.utils
import json
import logging
import math
import re
import time
from collections.abc import Mapping

import anthropic
from django.conf import settings

from agents.strategies.base import ParamValidationError

from .base import (
    CandidateCollector,
    RefinerAuthError,
    RefinerContext,
    RefinerError,
    RefinerResult,
    RefinerUnavailable,
    finite_score,
)

log = logging.getLogger(__name__)

HISTORY_BEST = 10  # best-scoring sets shown to the model
HISTORY_RECENT = 20  # plus the most recent ones (the two lists overlap at most fully)
TRADES_SHOWN = 10
MAX_RATIONALE_CHARS = 2000

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


def _bound(value, spec_type):
    if value is None:
        return None
    if spec_type == "int":
        return math.ceil(value) if not float(value).is_integer() else int(value)
    return float(value)


def params_json_schema(template) -> dict:
    """JSON schema of one parameter set: types, bounds, all required, nothing else."""
    properties = {}
    for spec in template.params:
        if spec.type == "bool":
            prop = {"type": "boolean"}
        else:
            prop = {"type": "integer" if spec.type == "int" else "number"}
            if spec.min is not None:
                prop["minimum"] = _bound(spec.min, spec.type)
            if spec.max is not None:
                prop["maximum"] = _bound(spec.max, spec.type)
        if spec.description:
            prop["description"] = spec.description
        properties[spec.name] = prop
    return {
        "type": "object",
        "properties": properties,
        "required": [spec.name for spec in template.params],
        "additionalProperties": False,
    }


def output_schema(template, n_candidates) -> dict:
    """The answer's full JSON schema (standard keywords, bounds included)."""
    return {
        "type": "object",
        "properties": {
            "candidates": {
                "type": "array",
                "description": f"Exactly {n_candidates} distinct new parameter sets.",
                "minItems": n_candidates,
                "maxItems": n_candidates,
                "items": {
                    "type": "object",
                    "properties": {
                        "params": params_json_schema(template),
                        "rationale": {"type": "string", "description": "Why this set should score better."},
                    },
                    "required": ["params", "rationale"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["candidates"],
        "additionalProperties": False,
    }


def wire_schema(template, n_candidates) -> dict:
    """`output_schema` in the subset the structured-outputs API accepts (bounds moved to
    the descriptions by the SDK's own transformer)."""
    return anthropic.transform_schema(output_schema(template, n_candidates))


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
    scored = [(i, t) for i, t in indexed if finite_score(t.score) is not None]
    best = sorted(scored, key=lambda it: finite_score(it[1].score), reverse=True)[:HISTORY_BEST]
    chosen = {i for i, _ in best} | {i for i, _ in indexed[-HISTORY_RECENT:]}
    best_ids = {i for i, _ in best}
    rows = []
    for i, tried in indexed:
        if i in chosen:
            row = {"trial": i, "score": finite_score(tried.score), "params": tried.params}
            if i in best_ids:
                row["top"] = True
            if row["score"] is None:
                row["failed"] = True
            rows.append(row)
    return rows


def _trades_summary(trades):
    returns = [finite_score(t.get("return_pct")) for t in trades if isinstance(t, Mapping)]
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
    scored = [finite_score(t.score) for t in ctx.history]
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
            f"Parameter sets already evaluated: {len(ctx.history)} "
            f"({sum(s is None for s in scored)} failed; best selection score: "
            f"{'n/a' if best is None else f'{best:.6g}'}). Shown below: the {HISTORY_BEST} best "
            f"(top: true) and the {HISTORY_RECENT} most recent, oldest first:\n{_dump(_history_rows(ctx.history))}"
        ),
        "Recent trades of the current version (return_pct is a fraction):\n"
        + _dump(_trades_summary(ctx.recent_trades)),
        (f"Propose exactly {n} new, distinct parameter sets, each with every parameter above and a short rationale."),
    ]
    return "\n\n".join(sections)


# Time bound --------------------------------------------------------------------------

# The SDK sleeps whatever a 429's or 5xx's retry-after asks before its next attempt (this
# version: up to 49 days). A longer wait than this is not waited for: the call gives up at
# once and the iteration falls back to Optuna, so it ends well below its soft time limit.
MAX_RETRY_WAIT_SECONDS = 30.0
SDK_MAX_BACKOFF_SECONDS = 8.0  # the SDK's own backoff cap without a hint (anthropic MAX_RETRY_DELAY)


def call_budget_seconds():
    """The longest one call can take: every attempt times out, every wait is the longest.

        (ANTHROPIC_MAX_RETRIES + 1) * ANTHROPIC_TIMEOUT_SECONDS
            + ANTHROPIC_MAX_RETRIES * max(MAX_RETRY_WAIT_SECONDS, SDK_MAX_BACKOFF_SECONDS)

    (the timeout bounds each connect, read and write; an answer trickling in byte by byte
    is bounded by the task's soft time limit). Defaults: 3 * 60 + 2 * 30 = 240 s < 300 s.
    """
    retries = settings.ANTHROPIC_MAX_RETRIES
    return (retries + 1) * settings.ANTHROPIC_TIMEOUT_SECONDS + retries * max(
        MAX_RETRY_WAIT_SECONDS, SDK_MAX_BACKOFF_SECONDS
    )


def retry_after_seconds(headers):
    """The wait a response asks for, read as the SDK reads it (retry-after-ms, then retry-after
    in seconds or as an HTTP date), or None."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return float(headers.get(name)) * scale
        except (TypeError, ValueError):
            continue
    parsed = email.utils.parsedate_tz(headers.get("retry-after") or "")
    return None if parsed is None else email.utils.mktime_tz(parsed) - time.time()


def refuse_long_retry_waits(request, call_next):
    """SDK middleware (one per attempt): a retry-after beyond MAX_RETRY_WAIT_SECONDS is
    answered with the SDK's own "do not retry" signal instead of a long sleep."""
    response = call_next(request)
    wait = retry_after_seconds(response.http_response.headers)
    if wait is not None and wait > MAX_RETRY_WAIT_SECONDS:
        response.http_response.headers["x-should-retry"] = "false"
    return response


# The call ---------------------------------------------------------------------------

_KEY_PATTERN = re.compile(r"sk-ant-[A-Za-z0-9_\-]+")


def _scrub(text, api_key):
    text = str(text)
    if api_key:
        text = text.replace(api_key, "[redacted]")
    return _KEY_PATTERN.sub("[redacted]", text)


class ClaudeRefiner:
    name = "claude"

    def __init__(self, client=None, *, http_client=None, model=None, max_tokens=None):
        """`client`: an `anthropic.Anthropic` (tests pass one); otherwise one is built from
        settings on first use, with `http_client` if given."""
        self._client = client
        self._http_client = http_client
        self.model = model or settings.ANTHROPIC_MODEL
        self.max_tokens = max_tokens or settings.ANTHROPIC_MAX_TOKENS

    @property
    def client(self):
        if self._client is None:
            if not settings.ANTHROPIC_API_KEY:
                raise RefinerAuthError(
                    "ANTHROPIC_API_KEY is not set: the Claude refiner needs an API key (or choose the optuna refiner)"
                )
            self._client = anthropic.Anthropic(
                api_key=settings.ANTHROPIC_API_KEY,
                timeout=settings.ANTHROPIC_TIMEOUT_SECONDS,
                max_retries=settings.ANTHROPIC_MAX_RETRIES,
                http_client=self._http_client,
                base_url=settings.ANTHROPIC_BASE_URL or None,
                middleware=[refuse_long_retry_waits],
            )
        return self._client

    def propose(self, ctx: RefinerContext) -> RefinerResult:
        client = self.client
        message = self._call(client, ctx)
        usage = message.usage
        input_tokens = (
            (usage.input_tokens or 0) + (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
        )
        cost = {"model": message.model or self.model, "input_tokens": input_tokens}
        cost["output_tokens"] = usage.output_tokens or 0

        collector = CandidateCollector(ctx.template, ctx.current_params, ctx.history, ctx.n_candidates)
        items, problem = self._decode(message)
        if problem:
            collector.reject(items, problem)
        else:
            for item in items:
                self._consider(ctx, collector, item)

        if not collector.candidates:
            reasons = "; ".join(r.reason for r in collector.rejected[:10]) or "no candidates in the answer"
            raise RefinerError(
                f"Claude proposed no valid parameter set: {reasons}", rejected=collector.rejected, **cost
            )
        return RefinerResult(candidates=collector.candidates, rejected=collector.rejected, refiner=self.name, **cost)

    def _call(self, client, ctx):
        api_key = getattr(client, "api_key", None) or ""
        retries = getattr(client, "max_retries", settings.ANTHROPIC_MAX_RETRIES)
        after = f"after {retries} retr{'y' if retries == 1 else 'ies'}"
        schema = wire_schema(ctx.template, ctx.n_candidates)
        try:
            return client.messages.create(
                model=self.model,
                max_tokens=self.max_tokens,
                system=SYSTEM_PROMPT,
                messages=[{"role": "user", "content": build_prompt(ctx)}],
                output_config={"format": {"type": "json_schema", "schema": schema}},
            )
        except (anthropic.AuthenticationError, anthropic.PermissionDeniedError) as exc:
            detail = _scrub(exc.api_message or exc.type or "authentication failed", api_key)
            raise RefinerAuthError(f"Claude rejected the API key ({exc.status_code}): {detail}") from None
        except anthropic.RateLimitError as exc:
            detail = _scrub(exc.api_message or "rate limited", api_key)
            wait = retry_after_seconds(exc.response.headers)
            if wait is not None and wait > MAX_RETRY_WAIT_SECONDS:
                after = f"and asks to wait {wait:.0f}s, more than the {MAX_RETRY_WAIT_SECONDS:.0f}s an iteration waits"
            raise RefinerUnavailable(f"Claude is rate limiting (429) {after}: {detail}") from None
        except anthropic.APITimeoutError:
            timeout = getattr(client, "timeout", None)
            timeout = getattr(timeout, "read", timeout)
            raise RefinerUnavailable(f"Claude did not answer in time (timeout {timeout}s) {after}") from None
        except anthropic.APIConnectionError as exc:
            raise RefinerUnavailable(f"could not reach the Claude API {after}: {_scrub(exc, api_key)}") from None
        except anthropic.APIStatusError as exc:
            detail = _scrub(exc.api_message or exc.type or "no detail", api_key)
            if exc.status_code >= 500 or exc.status_code in (408, 409):
                raise RefinerUnavailable(f"Claude API error ({exc.status_code}) {after}: {detail}") from None
            raise RefinerError(f"Claude rejected the request ({exc.status_code}): {detail}") from None
        except anthropic.AnthropicError as exc:
            raise RefinerError(f"Claude call failed: {_scrub(exc, api_key)}") from None

    # Parsing the untrusted answer -----------------------------------------------------

    def _decode(self, message):
        """(candidate items, "") or (raw answer, reason the whole answer is unusable)."""
        if message.stop_reason == "refusal":
            return None, "Claude declined to answer (stop_reason: refusal)"
        if message.stop_reason == "max_tokens":
            return None, (
                f"the answer was cut at max_tokens={self.max_tokens} before the JSON was complete "
                "(raise LAB_CLAUDE_MAX_TOKENS or ask for fewer candidates)"
            )
        text = "".join(block.text for block in message.content if getattr(block, "type", "") == "text").strip()
        if not text:
            return None, "the answer contained no text"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            return text[:500], f"the answer is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        except ValueError as exc:  # e.g. an integer literal beyond Python's digit limit
            return text[:500], f"the answer is not usable JSON ({exc})"
        if not isinstance(data, Mapping) or not isinstance(data.get("candidates"), list):
            return data, "the answer must be an object with a 'candidates' list"
        return data["candidates"], ""

    def _consider(self, ctx, collector, item):
        if not isinstance(item, Mapping) or "params" not in item:
            collector.reject(item, "candidate must be an object with 'params' and 'rationale'")
            return
        params = item["params"]
        try:
            clean = ctx.template.validate(params, fill_defaults=False)
        except ParamValidationError as exc:  # names every offending field and its rule
            collector.reject(params, f"invalid parameters: {exc}")
            return
        except (ValueError, TypeError, ArithmeticError) as exc:  # e.g. an int too large for a float
            collector.reject(params, f"invalid parameters: {type(exc).__name__}: {exc}")
            return
        problem = collector.why_not(clean)
        if problem:
            collector.reject(params, problem)
            return
        if collector.full:
            collector.reject(params, f"beyond the {ctx.n_candidates} candidates requested")
            return
        rationale = item.get("rationale")
        rationale = rationale.strip() if isinstance(rationale, str) and rationale.strip() else "(no rationale given)"
        collector.add(clean, rationale[:MAX_RATIONALE_CHARS], self.name)
