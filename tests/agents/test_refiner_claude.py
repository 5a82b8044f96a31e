"""The Claude refiner, driving the real anthropic SDK with HTTP faked at one seam
(an httpx2.MockTransport), plus the refiner factory and the Optuna fallback."""

import json
import time

import anthropic
import httpx2
import numpy as np
import pytest
from django.test import override_settings

from agents.refiners.base import (
    RefinerAuthError,
    RefinerContext,
    RefinerError,
    RefinerUnavailable,
    TriedParams,
)
from agents.refiners.claude_refiner import ClaudeRefiner, output_schema
from agents.refiners.factory import get_refiner, propose_with_fallback
from agents.refiners.optuna_refiner import OptunaRefiner
from agents.strategies.base import ParamSpec, StrategyTemplate

SECRET = "sk-ant-api03-test-SECRET-never-shown"
MODEL = "claude-sonnet-4-6"
PARAM_NAMES = ("fast", "slow", "band", "long_only", "stop_loss", "take_profit")


def make_template():
    return StrategyTemplate(
        key="sma_cross",
        name="SMA crossover",
        description="Long when the fast moving average is above the slow one.",
        own_params=(
            ParamSpec("fast", "int", 10, 2, 50, "Fast window (bars)."),
            ParamSpec("slow", "int", 30, 5, 200, "Slow window (bars)."),
            ParamSpec("band", "float", 0.01, 0.0, 0.1, "Dead band around the cross."),
        ),
        signal=lambda bars, params: np.zeros(len(bars)),
        constraints=(("must be less than slow", lambda p: p["fast"] < p["slow"], ("fast", "slow")),),
    )


CURRENT = {"fast": 10, "slow": 30, "band": 0.01, "long_only": True, "stop_loss": 0.0, "take_profit": 0.0}


def make_ctx(n=3):
    return RefinerContext(
        template=make_template(),
        current_params=dict(CURRENT),
        fold_metrics=[{"sharpe": 1.31, "total_return": 0.42, "num_trades": 57},
                      {"sharpe": 0.27, "total_return": 0.03, "max_drawdown": -0.18}],
        selection_score=0.27,
        objective="sharpe",
        history=[
            TriedParams({**CURRENT, "fast": 8, "slow": 40}, 0.61),
            TriedParams({**CURRENT, "fast": 20, "slow": 25}, None),
            TriedParams(dict(CURRENT), 0.27),
        ],
        recent_trades=[
            {
                "side": "long",
                "entry_time": "2024-03-01T00:00:00Z",
                "exit_time": "2024-03-04T00:00:00Z",
                "return_pct": 0.031,
            },
            {
                "side": "long",
                "entry_time": "2024-03-09T00:00:00Z",
                "exit_time": "2024-03-10T00:00:00Z",
                "return_pct": -0.012,
            },
        ],
        n_candidates=n,
        seed=3,
        instrument="BTC-USD",
    )


def params(**changes):
    return {**CURRENT, **changes}


def answer(candidates, *, stop_reason="end_turn", text=None, input_tokens=1843, output_tokens=402):
    """The Messages API's JSON for an assistant message carrying `candidates`."""
    return {
        "id": "msg_01TEST",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": text if text is not None else json.dumps({"candidates": candidates})}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def error(status, error_type, message, **headers):
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    return httpx2.Response(status, json=body, headers={"request-id": "req_test", **headers})


GOOD = [
    {"params": params(fast=12, slow=45), "rationale": "Slower trend filter: train/validation gap suggests noise."},
    {"params": params(fast=8, slow=40, band=0.02), "rationale": "Near the best trial so far, wider band."},
    {"params": params(stop_loss=0.05, take_profit=0.3), "rationale": "Cut the losers seen in recent trades."},
]


class FakeAPI:
    """Replies in order (the last one repeats); records every request it saw."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.requests = []

    def __call__(self, request):
        self.requests.append(request)
        reply = self.replies[min(len(self.requests), len(self.replies)) - 1]
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, httpx2.Response):
            return reply
        return httpx2.Response(200, json=reply)

    def body(self, i=0):
        return json.loads(self.requests[i].content)


def make_client(api, max_retries=2):
    return anthropic.Anthropic(
        api_key=SECRET,
        base_url="https://api.anthropic.com",
        max_retries=max_retries,
        timeout=5.0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(api)),
    )


def refiner_for(api, **kwargs):
    return ClaudeRefiner(make_client(api, **kwargs), model=MODEL, max_tokens=2048)


def assert_key_hidden(exc, *, from_sdk=True):
    assert SECRET not in str(exc)
    assert SECRET not in repr(exc)
    assert SECRET not in " ".join(r.reason for r in exc.rejected)
    if from_sdk:  # the SDK's exception (it holds the request and its headers) is not chained
        assert exc.__cause__ is None and exc.__suppress_context__


# The good path ----------------------------------------------------------------------


def test_good_answer_gives_validated_candidates_and_records_usage():
    api = FakeAPI(answer(GOOD))
    result = refiner_for(api).propose(make_ctx())

    assert result.refiner == "claude"
    assert result.model == "claude-sonnet-4-6"  # as the API reported it
    assert (result.input_tokens, result.output_tokens) == (1843, 402)
    assert result.rejected == []
    assert [c.params for c in result.candidates] == [c["params"] for c in GOOD]
    assert [c.rationale for c in result.candidates] == [c["rationale"] for c in GOOD]
    assert {c.source for c in result.candidates} == {"claude"}
    assert len(api.requests) == 1


def test_request_carries_schema_bounds_current_params_metrics_history_and_trades():
    api = FakeAPI(answer(GOOD))
    refiner_for(api).propose(make_ctx())
    request = api.requests[0]
    body = api.body()

    assert request.url.path == "/v1/messages"
    assert body["model"] == MODEL
    assert body["max_tokens"] == 2048
    assert body["output_config"]["format"]["type"] == "json_schema"

    schema = body["output_config"]["format"]["schema"]
    assert schema["required"] == ["candidates"] and schema["additionalProperties"] is False
    item = schema["properties"]["candidates"]["items"]
    assert item["required"] == ["params", "rationale"] and item["additionalProperties"] is False
    props = item["properties"]["params"]
    assert props["required"] == list(PARAM_NAMES)
    assert props["additionalProperties"] is False
    assert props["properties"]["fast"]["type"] == "integer"
    assert props["properties"]["band"]["type"] == "number"
    assert props["properties"]["long_only"]["type"] == "boolean"
    # Bounds travel in the descriptions: the structured-outputs API rejects "minimum"/"maximum".
    assert "{minimum: 2, maximum: 50}" in props["properties"]["fast"]["description"]
    assert "{minimum: 5, maximum: 200}" in props["properties"]["slow"]["description"]
    assert "{minimum: 0.0, maximum: 0.5}" in props["properties"]["stop_loss"]["description"]
    assert '"minimum"' not in json.dumps(schema) and '"maximum"' not in json.dumps(schema)
    assert "Exactly 3" in schema["properties"]["candidates"]["description"]

    prompt = body["messages"][0]["content"]
    assert body["messages"][0]["role"] == "user"
    assert "sma_cross" in prompt and "Long when the fast moving average" in prompt
    assert '"name": "fast", "type": "int", "default": 10, "min": 2, "max": 50' in prompt
    assert "fast: must be less than slow" in prompt
    assert json.dumps(CURRENT) in prompt
    assert '"sharpe": 1.31' in prompt and '"max_drawdown": -0.18' in prompt
    assert "Objective, per fold: sharpe" in prompt and "Current selection score: 0.27" in prompt
    assert '"score": 0.61' in prompt and '"failed": true' in prompt
    assert '"win_rate": 0.5' in prompt and "2024-03-09T00:00:00Z" in prompt
    assert "exactly 3 new" in prompt
    assert "JSON" in body["system"]


def test_output_schema_is_built_from_the_param_specs():
    schema = output_schema(make_template(), 4)["properties"]["candidates"]
    assert (schema["minItems"], schema["maxItems"]) == (4, 4)
    fast = schema["items"]["properties"]["params"]["properties"]["fast"]
    assert (fast["type"], fast["minimum"], fast["maximum"]) == ("integer", 2, 50)
    take_profit = schema["items"]["properties"]["params"]["properties"]["take_profit"]
    assert (take_profit["type"], take_profit["minimum"], take_profit["maximum"]) == ("number", 0.0, 5.0)


# Untrusted answers ------------------------------------------------------------------


def test_off_schema_proposals_are_rejected_with_the_reason_naming_the_field():
    bad = {k: v for k, v in CURRENT.items() if k != "band"}
    candidates = [
        {"params": params(fast=500), "rationale": "out of bounds"},
        {"params": params(leverage=3), "rationale": "unknown param"},
        {"params": params(slow="forty"), "rationale": "wrong type"},
        {"params": params(long_only="yes"), "rationale": "wrong type"},
        {"params": bad, "rationale": "missing param"},
        {"params": params(fast=40, slow=30), "rationale": "breaks fast < slow"},
        {"params": dict(CURRENT), "rationale": "the current params"},
        {"params": params(fast=8, slow=40), "rationale": "already evaluated"},
        "not an object",
        {"params": params(fast=14, slow=60.0), "rationale": "  valid: 60.0 is an integer  "},
        {"params": params(fast=14, slow=60), "rationale": "duplicate of the one above"},
    ]
    result = refiner_for(FakeAPI(answer(candidates))).propose(make_ctx())

    assert [c.params for c in result.candidates] == [params(fast=14, slow=60)]
    assert isinstance(result.candidates[0].params["slow"], int)
    assert result.candidates[0].rationale == "valid: 60.0 is an integer"
    reasons = [r.reason for r in result.rejected]
    assert reasons == [
        "invalid parameters: fast: must be <= 50",
        reasons[1],
        "invalid parameters: slow: must be a number (int)",
        "invalid parameters: long_only: must be a boolean (true or false)",
        "invalid parameters: band: is required",
        "invalid parameters: fast: must be less than slow",
        "same as the current parameters",
        "already evaluated (score 0.61)",
        "candidate must be an object with 'params' and 'rationale'",
        "duplicate of candidate #1",
    ]
    assert reasons[1].startswith("invalid parameters: leverage: unknown parameter for template 'sma_cross'")
    # The rejected proposal is kept as received, for the record.
    assert result.rejected[0].params == params(fast=500)
    assert result.rejected[8].params == "not an object"


def test_more_candidates_than_asked_keeps_the_first_n():
    extra = [*GOOD, {"params": params(band=0.05), "rationale": "one too many"}]
    result = refiner_for(FakeAPI(answer(extra))).propose(make_ctx(n=3))
    assert len(result.candidates) == 3
    assert [r.reason for r in result.rejected] == ["beyond the 3 candidates requested"]


def test_nothing_valid_is_a_refiner_error_with_the_reasons_and_the_cost():
    candidates = [{"params": params(fast=0), "rationale": "x"}, {"params": params(stop_loss=2.0), "rationale": "y"}]
    with pytest.raises(RefinerError) as caught:
        refiner_for(FakeAPI(answer(candidates))).propose(make_ctx())

    exc = caught.value
    assert type(exc) is RefinerError
    assert "no valid parameter set" in str(exc)
    assert "fast: must be >= 2" in str(exc) and "stop_loss: must be <= 0.5" in str(exc)
    assert len(exc.rejected) == 2
    assert (exc.input_tokens, exc.output_tokens) == (1843, 402)
    assert_key_hidden(exc, from_sdk=False)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (answer([], text="Sure! Here are some ideas: fast=12"), "not valid JSON"),
        (answer([], text='{"proposals": []}'), "must be an object with a 'candidates' list"),
        (answer([], text='{"candidates": [{"params": {"fast": 1'), "not valid JSON"),
        (answer([], text='{"candidates": [', stop_reason="max_tokens"), "cut at max_tokens=2048"),
        (answer([], text="", stop_reason="refusal"), "declined"),
        (answer([]), "no candidates in the answer"),
    ],
)
def test_unusable_answers_are_refiner_errors(reply, message):
    with pytest.raises(RefinerError, match=message) as caught:
        refiner_for(FakeAPI(reply)).propose(make_ctx())
    assert type(caught.value) is RefinerError


# Transport and API errors -----------------------------------------------------------


def test_rate_limit_then_success_is_retried_by_the_sdk():
    api = FakeAPI(error(429, "rate_limit_error", "slow down", **{"retry-after-ms": "1"}), answer(GOOD))
    started = time.monotonic()
    result = refiner_for(api).propose(make_ctx())

    assert len(result.candidates) == 3
    assert len(api.requests) == 2
    assert api.requests[1].headers["x-stainless-retry-count"] == "1"
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(("status", "error_type"), [(500, "api_error"), (503, "api_error"), (529, "overloaded_error")])
def test_repeated_server_errors_make_claude_unavailable(status, error_type):
    api = FakeAPI(error(status, error_type, "try later", **{"retry-after-ms": "1"}))
    with pytest.raises(RefinerUnavailable, match=rf"\({status}\) after 2 retries: try later") as caught:
        refiner_for(api).propose(make_ctx())
    assert len(api.requests) == 3  # first attempt + max_retries
    assert_key_hidden(caught.value)


def test_rate_limit_that_never_clears_makes_claude_unavailable():
    api = FakeAPI(error(429, "rate_limit_error", "slow down", **{"retry-after-ms": "1"}))
    with pytest.raises(RefinerUnavailable, match="rate limiting"):
        refiner_for(api, max_retries=1).propose(make_ctx())
    assert len(api.requests) == 2


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key_is_an_auth_error_without_the_key(status):
    api = FakeAPI(error(status, "authentication_error", "invalid x-api-key"))
    with pytest.raises(
        RefinerAuthError, match=rf"Claude rejected the API key \({status}\): invalid x-api-key"
    ) as caught:
        refiner_for(api).propose(make_ctx())
    assert len(api.requests) == 1  # never retried
    assert_key_hidden(caught.value)


def test_other_client_errors_are_refiner_errors_and_the_key_is_scrubbed_even_if_echoed():
    api = FakeAPI(error(400, "invalid_request_error", f"output_config.format.schema: bad schema (key {SECRET})"))
    with pytest.raises(RefinerError, match=r"Claude rejected the request \(400\): output_config") as caught:
        refiner_for(api).propose(make_ctx())
    assert type(caught.value) is RefinerError
    assert "[redacted]" in str(caught.value)
    assert_key_hidden(caught.value)


@pytest.mark.parametrize(
    ("failure", "message"),
    [(httpx2.ReadTimeout("read timed out"), "did not answer in time"), (httpx2.ConnectError("refused"), "reach")],
)
def test_timeouts_and_network_failures_make_claude_unavailable(failure, message):
    api = FakeAPI(failure)
    client = make_client(api, max_retries=2)
    # No response, so no retry-after header to honour: skip the SDK's backoff sleep.
    client._calculate_retry_timeout = lambda *args, **kwargs: 0.0
    with pytest.raises(RefinerUnavailable, match=message) as caught:
        ClaudeRefiner(client, model=MODEL).propose(make_ctx())
    assert len(api.requests) == 3
    assert_key_hidden(caught.value)


# Building the client from settings, the factory and the fallback ----------------------


def test_client_is_built_from_settings():
    api = FakeAPI(answer(GOOD))
    http_client = httpx2.Client(transport=httpx2.MockTransport(api))
    with override_settings(
        ANTHROPIC_API_KEY=SECRET,
        ANTHROPIC_MODEL="claude-test-model",
        ANTHROPIC_TIMEOUT_SECONDS=7.5,
        ANTHROPIC_MAX_RETRIES=1,
        ANTHROPIC_MAX_TOKENS=999,
    ):
        refiner = ClaudeRefiner(http_client=http_client)
        refiner.propose(make_ctx())
        assert refiner.client.max_retries == 1
        assert refiner.client.timeout == 7.5
    body = api.body()
    assert (body["model"], body["max_tokens"]) == ("claude-test-model", 999)
    sent = dict(api.requests[0].headers)
    assert SECRET in (sent.get("x-api-key", "") + sent.get("authorization", ""))


def test_missing_key_is_an_auth_error():
    with override_settings(ANTHROPIC_API_KEY=""), pytest.raises(RefinerAuthError, match="ANTHROPIC_API_KEY is not set"):
        ClaudeRefiner().propose(make_ctx())


def test_factory_picks_the_refiner():
    assert isinstance(get_refiner("optuna", api_key_configured=True), OptunaRefiner)
    assert isinstance(get_refiner("auto", api_key_configured=False), OptunaRefiner)
    assert isinstance(get_refiner("auto", api_key_configured=True), ClaudeRefiner)
    assert isinstance(get_refiner("claude", api_key_configured=True), ClaudeRefiner)
    with pytest.raises(RefinerAuthError, match="ANTHROPIC_API_KEY is not set"):
        get_refiner("claude", api_key_configured=False)
    with pytest.raises(RefinerError, match="unknown refiner 'gpt'"):
        get_refiner("gpt")
    with override_settings(ANTHROPIC_API_KEY=SECRET):
        assert isinstance(get_refiner("auto"), ClaudeRefiner)
    with override_settings(ANTHROPIC_API_KEY=""):
        assert isinstance(get_refiner("auto"), OptunaRefiner)


def test_unavailable_claude_falls_back_to_optuna():
    api = FakeAPI(error(529, "overloaded_error", "overloaded", **{"retry-after-ms": "1"}))
    result = propose_with_fallback(refiner_for(api, max_retries=0), make_ctx())

    assert result.refiner == "optuna"
    assert len(result.candidates) == 3
    assert result.fallback_reason.startswith("claude unavailable: Claude API error (529) after 0 retries")


def test_auth_errors_do_not_fall_back():
    api = FakeAPI(error(401, "authentication_error", "invalid x-api-key"))
    with pytest.raises(RefinerAuthError):
        propose_with_fallback(refiner_for(api), make_ctx())
