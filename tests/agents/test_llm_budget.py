import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from agents.models import ActivityLog, IterationStatus, LearningIteration
from agents.services import learning, llm_budget
from tests.factories import make_agent

pytestmark = pytest.mark.django_db


def spend(agent, number, tokens, when):
    LearningIteration.objects.create(agent=agent, number=number, status=IterationStatus.SUCCEEDED,
                                     refiner_used="claude", started_at=when, llm_input_tokens=tokens,
                                     llm_output_tokens=tokens // 10)


def test_budget_counts_todays_claude_calls_and_tokens(settings):
    settings.LAB_LLM_DAILY_CALLS = 3
    settings.LAB_LLM_DAILY_TOKENS = 10_000
    agent = make_agent()
    with time_machine.travel(dt.datetime(2026, 5, 4, 23, 0, tzinfo=dt.UTC), tick=False):
        spend(agent, 1, 5000, timezone.now() - dt.timedelta(days=1))  # yesterday: not counted
        spend(agent, 2, 1000, timezone.now())
        state = llm_budget.budget_state()
        assert (state.calls, state.tokens, state.exhausted) == (1, 1100, False)
        spend(agent, 3, 9000, timezone.now())
        assert llm_budget.budget_state().exhausted  # tokens over
    with time_machine.travel(dt.datetime(2026, 5, 5, 0, 1, tzinfo=dt.UTC), tick=False):
        assert not llm_budget.budget_state().exhausted  # a new day


def test_over_budget_iterations_use_optuna_and_say_so(settings):
    settings.ANTHROPIC_API_KEY = "sk-test-not-a-real-key"
    settings.LAB_LLM_DAILY_CALLS = 1
    agent = make_agent(refiner="claude")
    spend(agent, 1, 10, timezone.now())
    iteration, _ = learning.iteration_run_now(agent, trigger="manual")
    assert iteration.status == IterationStatus.SUCCEEDED, iteration.error
    assert iteration.refiner_used == "optuna"
    assert "budget exhausted" in iteration.fallback_reason
    assert ActivityLog.objects.filter(agent=agent, event="refiner_fallback", message__contains="budget").exists()
