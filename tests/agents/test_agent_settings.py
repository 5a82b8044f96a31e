"""agents.agent_settings: each agent setting declared once; the model, the service, the API and
the console form all follow the declaration."""

import dataclasses

import pytest
from django.forms.models import model_to_dict
from rest_framework.test import APIClient

from agents import agent_settings
from agents.api.serializers import AgentCreateSerializer, AgentUpdateSerializer
from agents.models import TradingAgent
from agents.services.agents import agent_update
from console.forms import AgentAdminForm
from core.errors import ValidationFailed
from tests.factories import UserFactory, make_agent

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent():
    return make_agent(owner=UserFactory(username="owner"))


@pytest.fixture
def api(agent):
    client = APIClient()
    client.force_authenticate(agent.owner)
    return client


def _narrow(monkeypatch, name, **changes):
    declared = tuple(dataclasses.replace(s, **changes) if s.name == name else s for s in agent_settings.AGENT_SETTINGS)
    monkeypatch.setattr(agent_settings, "AGENT_SETTINGS", declared)


def _service_errors(agent, **values):
    try:
        agent_update(agent, actor=agent.owner, **values)
    except ValidationFailed as exc:
        return exc.errors
    return {}


def _api_errors(api, agent, **values):
    resp = api.patch(f"/api/learning-agents/{agent.pk}", values, format="json")
    return {} if resp.status_code == 200 else resp.json()


def _form_errors(agent, **values):
    data = {**model_to_dict(agent, fields=["owner", "instrument", *agent_settings.names()]),
            "strategy_template": agent.strategy_template, "learning_timezone": "UTC", **values}
    form = AgentAdminForm(data=data, instance=agent)
    form.is_valid()
    return dict(form.errors)


def test_the_model_takes_defaults_help_and_choices_from_the_declaration():
    for setting in agent_settings.AGENT_SETTINGS:
        field = TradingAgent._meta.get_field(setting.name)
        assert field.help_text == setting.help, setting.name
        if setting.default is not None:
            assert field.default == setting.default, setting.name
        if setting.kind == "choice":
            assert field.choices == setting.choices.choices


def test_every_declared_setting_is_an_api_field_a_form_field_and_editable(agent):
    names = set(agent_settings.names())
    assert names <= set(AgentCreateSerializer().fields) and names <= set(AgentUpdateSerializer().fields)
    assert names <= set(AgentAdminForm(instance=agent).fields)
    assert _service_errors(agent, status="live_trading") == {"status": "is read-only here"}


def test_a_bound_changed_in_the_declaration_changes_service_api_and_form(agent, api, monkeypatch):
    # 15 folds is within the declared 2..20: all three accept it (the check below can fail).
    assert _service_errors(agent, n_folds=15) == {}
    assert _api_errors(api, agent, n_folds=14) == {}
    assert _form_errors(agent, n_folds=13) == {}
    _narrow(monkeypatch, "n_folds", high=10)
    rule = "must be an integer between 2 and 10"
    assert _service_errors(agent, n_folds=12) == {"n_folds": rule}
    assert _api_errors(api, agent, n_folds=11) == {"n_folds": [rule]}
    assert _form_errors(agent, n_folds=11) == {"n_folds": [rule]}
    agent.refresh_from_db()
    assert agent.n_folds == 14  # the API saved 14 (the form only validates); the refusals changed nothing
    schema = api.get("/api/schema/", {"format": "json"}).json()
    patch = schema["components"]["schemas"]["PatchedAgentUpdateRequest"]["properties"]["n_folds"]
    assert (patch["minimum"], patch["maximum"]) == (2, 10)


@pytest.mark.parametrize(("name", "bad", "rule"), [
    ("test_fraction", 0.6, "must be a number between 0.05 and 0.5"),
    ("fee_bps", -1, "must be a number between 0 and 1000"),
    ("initial_capital", 0.5, "must be a number between 1 and 1000000000000"),
    ("min_iteration_gap_minutes", 2.5, "must be an integer between 0 and 10080"),
    ("objective", "profit", "must be one of sharpe, sortino, calmar, total_return, psr"),
])
def test_each_bad_value_gets_the_same_words_everywhere(agent, api, name, bad, rule):
    assert _service_errors(agent, **{name: bad}) == {name: rule}
    assert _api_errors(api, agent, **{name: bad}) == {name: [rule]}
    if agent_settings.setting(name).kind in agent_settings.NUMERIC_KINDS:
        assert _form_errors(agent, **{name: bad}) == {name: [rule]}


def test_booleans_are_no_numbers_for_a_setting(agent, api):
    assert _service_errors(agent, n_folds=True) == {"n_folds": "must be an integer between 2 and 20"}
    assert _api_errors(api, agent, convergence_threshold=True) == {
        "convergence_threshold": ["must be a number between 0 and 1"]}
