"""The agent admin (console/agent_admin.py): adding and editing an agent through its form, the actions."""

import pytest
from django_celery_beat.models import PeriodicTask

from agents.models import StrategyVersion, TradingAgent
from agents.services import learning
from tests.factories import InstrumentFactory, UserFactory, make_agent, random_walk_bars

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser(client):
    user = UserFactory(username="op", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


def form_data(instrument, **extra):
    data = {
        "owner": "", "name": "console agent", "description": "", "instrument": instrument.pk,
        "strategy_template": "sma_crossover", "params": '{"fast": 10}', "refiner": "optuna",
        "objective": "sharpe", "fee_bps": 1, "slippage_bps": 1, "test_fraction": 0.2, "n_folds": 5,
        "candidates_per_iteration": 4, "initial_capital": 100000, "random_seed": 1,
        "max_iterations_per_day": 10, "min_iteration_gap_minutes": 60, "convergence_threshold": 0.01,
        "learning_cron": "", "learning_timezone": "UTC", "thresholds": "null",
        **{f"{prefix}-{k}": v for prefix in ("refinements", "iterations", "versions")
           for k, v in (("TOTAL_FORMS", 0), ("INITIAL_FORMS", 0), ("MIN_NUM_FORMS", 0), ("MAX_NUM_FORMS", 0))},
    }
    data.update(extra)
    return data


def test_add_agent_through_the_console_creates_version_one_and_schedule(client, superuser):
    instrument = random_walk_bars(InstrumentFactory())
    data = form_data(instrument, owner=superuser.pk, learning_cron="0 */6 * * *", auto_learn="on")
    resp = client.post("/admin/agents/tradingagent/add/", data)
    assert resp.status_code == 302, resp.content.decode()[-3000:]
    agent = TradingAgent.objects.get(name="console agent")
    assert agent.current_version.number == 1 and agent.current_version.params["fast"] == 10
    assert agent.auto_learn_enabled and agent.learning_schedule == "0 */6 * * *"
    assert PeriodicTask.objects.filter(name=f"agent:{agent.pk}:learn", enabled=True).exists()
    assert client.get(f"/admin/agents/tradingagent/{agent.pk}/change/").status_code == 200


def test_bad_cron_in_the_console_shows_the_api_message_and_changes_nothing(client, superuser):
    agent = make_agent(owner=superuser)
    data = form_data(agent.instrument, owner=superuser.pk, name=agent.name, learning_cron="0 25 * * *",
                     auto_learn="on")
    resp = client.post(f"/admin/agents/tradingagent/{agent.pk}/change/", data)
    assert resp.status_code == 200
    assert "out of range" in resp.content.decode()
    agent.refresh_from_db()
    assert not agent.auto_learn_enabled and agent.learning_schedule == ""
    assert not PeriodicTask.objects.filter(name__startswith="agent:").exists()


def test_actions_call_the_services(client, superuser):
    agent = make_agent(owner=superuser)
    changelist = "/admin/agents/tradingagent/"
    client.post(changelist, {"action": "start_continuous", "_selected_action": [agent.pk]})
    agent.refresh_from_db()
    assert agent.continuous_learning_enabled
    resp = client.post(changelist, {"action": "enable_auto_learn", "_selected_action": [agent.pk]}, follow=True)
    assert "set a schedule first" in resp.content.decode()
    client.post(changelist, {"action": "delete_selected", "_selected_action": [agent.pk], "post": "yes"})
    assert not TradingAgent.objects.filter(pk=agent.pk).exists()
    assert not StrategyVersion.objects.filter(agent_id=agent.pk).exists()


def test_console_pages_render(client, superuser):
    agent = make_agent(owner=superuser)
    learning.iteration_run_now(agent, trigger="manual")
    for url in ("/admin/", "/admin/agents/tradingagent/", "/admin/agents/learningiteration/",
                "/admin/agents/refinement/", "/admin/agents/strategyversion/", "/admin/agents/activitylog/",
                f"/admin/agents/tradingagent/{agent.pk}/change/", "/admin/agents/tradingagent/add/"):
        assert client.get(url).status_code == 200, url
