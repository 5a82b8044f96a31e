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
import time
from collections.abc import Mapping

import anthropic
from django.conf import settings

from agents.strategies.base import ParamValidationError
from config.redaction import redact

from .base import (
    CandidateCollector,
    RefinerAuthError,
    RefinerContext,
    RefinerError,
    RefinerResult,
    RefinerUnavailable,
)
from .claude_prompt import SYSTEM_PROMPT, build_prompt

log = logging.getLogger(__name__)

MAX_RATIONALE_CHARS = 2000

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

        collector = CandidateCollector(ctx.template, ctx.current_params, ctx.history, ctx.n_candidates,
                                       ctx.evaluated)
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
            detail = redact(str(exc.api_message or exc.type or "authentication failed"), api_key)
            raise RefinerAuthError(f"Claude rejected the API key ({exc.status_code}): {detail}") from None
        except anthropic.RateLimitError as exc:
            detail = redact(str(exc.api_message or "rate limited"), api_key)
            wait = retry_after_seconds(exc.response.headers)
            if wait is not None and wait > MAX_RETRY_WAIT_SECONDS:
                after = f"and asks to wait {wait:.0f}s, more than the {MAX_RETRY_WAIT_SECONDS:.0f}s an iteration waits"
            raise RefinerUnavailable(f"Claude is rate limiting (429) {after}: {detail}") from None
        except anthropic.APITimeoutError:
            timeout = getattr(client, "timeout", None)
            timeout = getattr(timeout, "read", timeout)
            raise RefinerUnavailable(f"Claude did not answer in time (timeout {timeout}s) {after}") from None
        except anthropic.APIConnectionError as exc:
            raise RefinerUnavailable(f"could not reach the Claude API {after}: {redact(str(exc), api_key)}") from None
        except anthropic.APIStatusError as exc:
            detail = redact(str(exc.api_message or exc.type or "no detail"), api_key)
            if exc.status_code >= 500 or exc.status_code in (408, 409):
                raise RefinerUnavailable(f"Claude API error ({exc.status_code}) {after}: {detail}") from None
            raise RefinerError(f"Claude rejected the request ({exc.status_code}): {detail}") from None
        except anthropic.AnthropicError as exc:
            raise RefinerError(f"Claude call failed: {redact(str(exc), api_key)}") from None

    # Parsing the untrusted answer -----------------------------------------------------

    def _decode(self, message):
        """(candidate items, "") or (raw answer, reason the whole answer is unusable)."""
        if message.stop_reason == "refusal":
            return None, "Claude declined to answer (stop_reason: refusal)"
        if message.stop_reason == "max_tokens":
            return None, (
                f"the answer was cut at max_tokens={self.max_tokens} before the JSON was complete "
                "(raise ANTHROPIC_MAX_TOKENS or ask for fewer candidates)"
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
