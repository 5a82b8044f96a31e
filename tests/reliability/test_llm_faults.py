"""The LLM misbehaving: rate limits, server errors, timeouts, a rejected key, answers off the
schema or out of bounds. The real `anthropic` SDK talks HTTP to a scripted local server.

Every case: the refiner call ends within a budget computed from the settings (every attempt
times out, every wait between attempts is the longest allowed), itself below the iteration's
soft time limit; the iteration falls back to Optuna (transient or unusable answers) or fails
with a clear error (a rejected key), and either way an ERROR alert is raised by the monitor;
and a bad answer never changes anything: auto-approval is on with thresholds anything would
pass, yet no parameter set from a bad answer becomes a refinement or a version.
"""

import time

import pytest

from agents.models import IterationStatus, Refinement, RefinementStatus, StrategyVersion
from agents.refiners import claude_refiner
from agents.services import approval, learning
from alerts.models import AgentAlert, AlertType
from tests.factories import make_agent
from tests.reliability.helpers import claude_error, claude_message, sma

pytestmark = pytest.mark.django_db

TIMEOUT = 1.0  # ANTHROPIC_TIMEOUT_SECONDS for these tests; retries stay at the lab's setting
PASS_ANYTHING = {"min_win_rate": 0.0, "min_sharpe_ratio": -10.0, "min_signals": 0, "min_total_return": -1.0,
                 "require_improvement": False}
GOOD = [sma(10, 30), sma(12, 40)]
OUT_OF_BOUNDS = [sma(0, 30), sma(10, 10_000), sma(50, 20)]  # fast < 1, slow > 400, fast >= slow
OFF_SCHEMA = [
    {"params": {"fast": "ten", "slow": 30, "long_only": True, "stop_loss": 0.0, "take_profit": 0.0}, "rationale": "x"},
    {"params": {"fast": 10, "slow": 30, "leverage": 50}, "rationale": "an unknown parameter"},
    {"rationale": "no params at all"},
]


def rate_limited(retry_after):
    return {"status": 429, "body": claude_error(429, "rate_limit_error", "slow down"),
            "headers": {"retry-after": str(retry_after)}}


SERVER_ERROR = {"status": 500, "body": claude_error(500, "api_error", "internal error")}
HANGS = {"status": 200, "body": claude_message(GOOD), "delay": TIMEOUT * 5}

# name: (script, outcome, expected requests, bad params that must change nothing)
CASES = {
    "429 with a long retry-after": ([rate_limited(3600)], "fallback", 1, []),
    "429 on every attempt": ([rate_limited(1)], "fallback", "all", []),
    "500 on every attempt": ([SERVER_ERROR], "fallback", "all", []),
    "timeout on every attempt": ([HANGS], "fallback", "all", []),
    "401 rejected key": ([{"status": 401, "body": claude_error(401, "authentication_error", "invalid x-api-key")}],
                         "failed", 1, []),
    "answer is not JSON": ([{"status": 200, "body": claude_message([], text="Sure! Here are some ideas: fast=10")}],
                           "fallback", 1, []),
    "answer cut at max_tokens": ([{"status": 200, "body": claude_message(GOOD, stop_reason="max_tokens")}],
                                 "fallback", 1, []),
    "answer off the schema": ([{"status": 200, "body": claude_message(OFF_SCHEMA)}], "fallback", 1,
                              [c["params"] for c in OFF_SCHEMA if "params" in c]),
    "answer out of bounds": ([{"status": 200, "body": claude_message(OUT_OF_BOUNDS)}], "fallback", 1,
                             [c["params"] for c in OUT_OF_BOUNDS]),
}


@pytest.fixture
def timed_refiner(monkeypatch):
    """Wall time of each ClaudeRefiner.propose, whatever it ends with."""
    took = []
    original = claude_refiner.ClaudeRefiner.propose

    def propose(self, ctx):
        started = time.monotonic()
        try:
            return original(self, ctx)
        finally:
            took.append(time.monotonic() - started)

    monkeypatch.setattr(claude_refiner.ClaudeRefiner, "propose", propose)
    return took


def auto_approving_claude_agent():
    agent = make_agent(refiner="claude", candidates_per_iteration=2)
    approval.thresholds_set(agent, PASS_ANYTHING, actor=agent.owner, partial=True)
    approval.auto_approve_enable(agent, actor=agent.owner)
    agent.refresh_from_db()
    return agent


def run_iteration(agent, capture):
    with capture(execute=True):  # after commit: the monitor's alerts
        iteration, _ = learning.iteration_run_now(agent, trigger="manual")
    return iteration


def test_the_worst_case_of_a_refiner_call_fits_below_the_soft_time_limit(settings):
    budget = claude_refiner.call_budget_seconds()
    assert budget == (
        (settings.ANTHROPIC_MAX_RETRIES + 1) * settings.ANTHROPIC_TIMEOUT_SECONDS
        + settings.ANTHROPIC_MAX_RETRIES * claude_refiner.MAX_RETRY_WAIT_SECONDS
    )
    # What is left is for the backtests and for recording the outcome.
    assert budget < settings.LAB_ITERATION_SOFT_TIME_LIMIT, (budget, settings.LAB_ITERATION_SOFT_TIME_LIMIT)


@pytest.mark.parametrize("case", CASES)
def test_llm_fault_is_bounded_alerted_and_changes_nothing(
    case, settings, scripted_llm, timed_refiner, django_capture_on_commit_callbacks
):
    script, outcome, expected_requests, bad_params = CASES[case]
    settings.ANTHROPIC_TIMEOUT_SECONDS = TIMEOUT
    retries = settings.ANTHROPIC_MAX_RETRIES
    llm = scripted_llm(*script)
    agent = auto_approving_claude_agent()
    version_before = agent.current_version

    iteration = run_iteration(agent, django_capture_on_commit_callbacks)

    [took] = timed_refiner
    budget = claude_refiner.call_budget_seconds()
    assert took <= budget, (took, budget)
    assert len(llm.arrivals) == (retries + 1 if expected_requests == "all" else expected_requests)
    if case == "timeout on every attempt":
        assert took >= (retries + 1) * TIMEOUT  # each attempt waited its full timeout, no longer
    if case == "429 with a long retry-after":
        assert "asks to wait 3600s" in iteration.fallback_reason
    if case == "429 on every attempt":
        gaps = [b - a for a, b in zip(llm.arrivals, llm.arrivals[1:], strict=False)]
        assert gaps and all(gap >= 1.0 for gap in gaps), gaps  # retry-after honoured

    alerts = AgentAlert.objects.filter(agent=agent, alert_type=AlertType.ERROR)
    if outcome == "fallback":
        assert iteration.status == IterationStatus.SUCCEEDED, iteration.error
        assert iteration.refiner_used == "optuna"
        assert iteration.fallback_reason.startswith("claude failed")
        assert alerts.filter(fingerprint="refiner_fallback").exists()
    else:
        assert iteration.status == IterationStatus.FAILED
        assert "rejected the API key (401)" in iteration.error
        assert alerts.filter(fingerprint="iteration_failed").exists()

    # Nothing from the bad answer was stored, approved or applied.
    assert not Refinement.objects.filter(agent=agent, source="claude").exists()
    stored = list(Refinement.objects.filter(agent=agent).values_list("proposed_params", flat=True))
    versions = list(StrategyVersion.objects.filter(agent=agent).values_list("params", flat=True))
    for params in bad_params:
        assert params not in stored and params not in versions
    agent.refresh_from_db()
    applied = Refinement.objects.filter(agent=agent, status=RefinementStatus.APPLIED)
    if agent.current_version_id != version_before.pk:
        # Auto-approval may apply a fallback candidate: Optuna's, judged on its own metrics.
        assert [r.source for r in applied] == ["optuna"]
        assert agent.current_version.params == applied.get().proposed_params
    else:
        assert not applied.exists()
    print(f"\n[figures] LLM {case}: {len(llm.arrivals)} request(s), refiner call {took:.2f}s "
          f"(budget {budget:.0f}s, soft limit {settings.LAB_ITERATION_SOFT_TIME_LIMIT}s) -> {outcome}")


def test_a_short_retry_after_is_honoured_and_the_next_answer_used(
    settings, scripted_llm, timed_refiner, django_capture_on_commit_callbacks
):
    settings.ANTHROPIC_TIMEOUT_SECONDS = TIMEOUT
    llm = scripted_llm(rate_limited(1), {"status": 200, "body": claude_message(GOOD)})
    agent = make_agent(refiner="claude", candidates_per_iteration=2)
    iteration = run_iteration(agent, django_capture_on_commit_callbacks)
    assert iteration.status == IterationStatus.SUCCEEDED and iteration.refiner_used == "claude"
    assert not iteration.fallback_reason
    assert llm.arrivals[1] - llm.arrivals[0] >= 1.0
    assert Refinement.objects.filter(iteration=iteration, source="claude").count() == 2


def test_a_partly_bad_answer_keeps_only_the_valid_candidates(
    settings, scripted_llm, django_capture_on_commit_callbacks
):
    settings.ANTHROPIC_TIMEOUT_SECONDS = TIMEOUT
    scripted_llm({"status": 200, "body": claude_message([GOOD[0], *OUT_OF_BOUNDS])})
    agent = auto_approving_claude_agent()
    iteration = run_iteration(agent, django_capture_on_commit_callbacks)
    assert iteration.status == IterationStatus.SUCCEEDED and iteration.refiner_used == "claude"
    assert list(Refinement.objects.filter(iteration=iteration).values_list("proposed_params", flat=True)) == [
        GOOD[0]["params"]]
    rejected = agent.activity.get(event="iteration_succeeded").details["rejected_proposals"]
    assert len(rejected) == len(OUT_OF_BOUNDS)
    assert all("invalid parameters" in r["reason"] for r in rejected)
    versions = list(StrategyVersion.objects.filter(agent=agent).values_list("params", flat=True))
    assert all(c["params"] not in versions for c in OUT_OF_BOUNDS)
