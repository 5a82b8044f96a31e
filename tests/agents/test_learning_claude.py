"""The pipeline with the Claude refiner, the real SDK talking HTTP to a local fake API."""

import pytest

from agents.models import IterationStatus, Refinement
from agents.services import learning
from tests.factories import make_agent
from tests.fake_anthropic import FakeAnthropic, api_error, message, sma_candidates

pytestmark = pytest.mark.django_db
SECRET = "sk-ant-test-secret-key-0123456789"


@pytest.fixture
def claude_settings(settings):
    settings.ANTHROPIC_API_KEY = SECRET
    settings.ANTHROPIC_MAX_RETRIES = 1
    settings.ANTHROPIC_TIMEOUT_SECONDS = 5

    def use(fake):
        settings.ANTHROPIC_BASE_URL = fake.url

    return use


def test_claude_candidates_are_validated_stored_with_rationale_and_tokens(claude_settings):
    answer = sma_candidates([(10, 30), (15, 60), (60, 40)])  # the last breaks fast < slow
    with FakeAnthropic((200, message(answer))) as fake:
        claude_settings(fake)
        agent = make_agent(refiner="claude", candidates_per_iteration=3)
        iteration, _ = learning.iteration_run_now(agent, trigger="manual")
    assert iteration.status == IterationStatus.SUCCEEDED, iteration.error
    assert iteration.refiner_used == "claude"
    assert (iteration.llm_model, iteration.llm_input_tokens, iteration.llm_output_tokens) == (
        "claude-sonnet-4-6", 1200, 300)
    stored = list(Refinement.objects.filter(iteration=iteration).order_by("id"))
    assert [(r.proposed_params["fast"], r.proposed_params["slow"]) for r in stored] == [(10, 30), (15, 60)]
    assert stored[0].rationale == "try 10/30" and stored[0].source == "claude"
    rejected = agent.activity.get(event="iteration_succeeded").details["rejected_proposals"]
    assert "fast" in rejected[0]["reason"]
    headers = {k.lower(): v for k, v in fake.requests[0]["headers"].items()}
    assert SECRET in (headers.get("x-api-key", "") + headers.get("authorization", ""))


def test_repeated_server_errors_fall_back_to_optuna_and_record_why(claude_settings):
    with FakeAnthropic(api_error(500, "api_error", "overloaded")) as fake:
        claude_settings(fake)
        agent = make_agent(refiner="claude", candidates_per_iteration=3)
        iteration, _ = learning.iteration_run_now(agent, trigger="manual")
    assert iteration.status == IterationStatus.SUCCEEDED, iteration.error
    assert iteration.refiner_used == "optuna"
    assert "claude failed" in iteration.fallback_reason
    assert len(fake.requests) == 2  # the SDK's own retry, then the fallback
    assert Refinement.objects.filter(iteration=iteration, source="optuna").count() == 3


def test_rejected_key_fails_the_iteration_with_a_clear_message_and_no_secret(claude_settings):
    with FakeAnthropic(api_error(401, "authentication_error", f"invalid x-api-key {SECRET}")) as fake:
        claude_settings(fake)
        agent = make_agent(refiner="claude")
        iteration, _ = learning.iteration_run_now(agent, trigger="manual")
    assert iteration.status == IterationStatus.FAILED
    assert "401" in iteration.error or "API key" in iteration.error
    assert SECRET not in iteration.error
    assert not Refinement.objects.filter(iteration=iteration).exists()
    activity = list(agent.activity.all())
    assert activity and all(SECRET not in a.message and SECRET not in str(a.details) for a in activity)
