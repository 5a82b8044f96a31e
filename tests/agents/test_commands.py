import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from agents.models import IterationStatus, LearningIteration, TradingAgent
from tests.factories import InstrumentFactory, UserFactory, random_walk_bars

pytestmark = pytest.mark.django_db


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=out)
    return out.getvalue()


def test_ensure_operator_creates_once_and_prints_the_password(monkeypatch):
    monkeypatch.setenv("LAB_ADMIN_PASSWORD", "a-long-demo-password")
    assert "Created operator login: operator / a-long-demo-password" in run("ensure_operator")
    assert "exists" in run("ensure_operator")
    assert get_user_model().objects.get(username="operator").is_superuser


def test_create_agent_and_run_iterations_with_progress():
    UserFactory(username="operator")
    random_walk_bars(InstrumentFactory(symbol="SYNC"))
    assert "Created agent" in run("create_agent", "--name", "cli", "--instrument", "SYNC", "--template",
                                  "sma_crossover", "--param", "fast=5", "--param", "slow=30", "--refiner", "optuna")
    agent = TradingAgent.objects.get(name="cli")
    assert agent.current_version.params["fast"] == 5
    out = run("run_iteration", "cli", "--count", "3")
    assert out.count("] 1/3") == 1 and "] 3/3" in out and "sharpe=" in out
    assert LearningIteration.objects.filter(agent=agent, status=IterationStatus.SUCCEEDED).count() == 3


def test_create_agent_errors_name_the_field():
    UserFactory(username="operator")
    random_walk_bars(InstrumentFactory(symbol="SYNC"))
    with pytest.raises(CommandError, match=r"params\.fast"):
        run("create_agent", "--name", "x", "--instrument", "SYNC", "--template", "sma_crossover",
            "--param", "fast=500")
    with pytest.raises(CommandError, match="no agent"):
        run("run_iteration", "nobody")
    assert not TradingAgent.objects.exists()
