"""The rough edges a hostile-user probe found (issue 17): each is a clear refusal naming the field
and the rule, with nothing written, or a documented behaviour."""

import pytest
from django.forms.models import model_to_dict

from agents.agent_settings import setting
from agents.models import TradingAgent
from agents.services import approval
from graduation import criteria
from tests.factories import InstrumentFactory, make_agent, random_walk_bars

pytestmark = pytest.mark.django_db

MAX_DESCRIPTION = setting("description").max_length


@pytest.fixture(autouse=True)
def _no_llm_key(settings):
    settings.ANTHROPIC_API_KEY = ""


@pytest.fixture(autouse=True)
def owner(user):
    """The `api` client's user; the instrument every body below names exists for each test."""
    random_walk_bars(InstrumentFactory(symbol="EDG"), n=200)
    return user


def body(**extra):
    return {"name": "fine", "instrument": "EDG", "strategy_template": "sma_crossover", **extra}


def refused(resp, *fields):
    assert resp.status_code == 400, (resp.status_code, resp.content[:300])
    assert set(fields) <= set(resp.json()), resp.json()
    assert not TradingAgent.objects.exists()
    return resp.json()


# --- agent creation -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["\x1b[31mred\x1b[0m", "tab\there", "bell\x07", "rtl\u202eevil", "zero\u200bwidth",
                                  "line\u2028sep"])
def test_a_name_with_control_or_invisible_characters_is_refused(api, name):
    errors = refused(api.post("/api/learning-agents/", body(name=name), format="json"), "name")
    assert "control or invisible characters" in errors["name"][0]


def test_the_description_is_bounded_and_free_of_control_characters(api):
    errors = refused(api.post("/api/learning-agents/", body(description="x" * 900_000), format="json"),
                     "description")
    assert f"at most {MAX_DESCRIPTION} characters" in errors["description"][0]
    refused(api.post("/api/learning-agents/", body(description="ansi \x1b[2J"), format="json"), "description")
    resp = api.post("/api/learning-agents/", body(description="two lines\n\tindented " + "x" * 4000),
                       format="json")
    assert resp.status_code == 201, resp.content


def test_a_description_too_long_is_refused_on_edit_too(api, owner):
    agent = make_agent(owner=owner, name="edit-me")
    resp = api.patch(f"/api/learning-agents/{agent.pk}", {"description": "y" * (MAX_DESCRIPTION + 1)},
                        format="json")
    assert resp.status_code == 400 and "description" in resp.json()
    assert TradingAgent.objects.get(pk=agent.pk).description == ""


@pytest.mark.parametrize("fmt", ["multipart", "form"])
def test_form_bodies_refuse_unknown_and_read_only_fields_like_json(api, fmt):
    payload = body(status="live_trading", bogus="1")
    if fmt == "form":
        from urllib.parse import urlencode

        resp = api.post("/api/learning-agents/", urlencode(payload),
                           content_type="application/x-www-form-urlencoded")
    else:
        resp = api.post("/api/learning-agents/", payload, format="multipart")
    errors = refused(resp, "status", "bogus")
    assert "read-only" in errors["status"][0] and "unknown field" in errors["bogus"][0]


def test_a_form_body_from_the_browsable_api_with_its_csrf_token_is_accepted(api):
    resp = api.post("/api/learning-agents/", {**body(), "csrfmiddlewaretoken": "x"}, format="multipart")
    assert resp.status_code == 201, resp.content


# --- the Claude refiner without a key ---------------------------------------------------------
def test_claude_without_an_api_key_is_refused_naming_refiner(api, owner, settings):
    errors = refused(api.post("/api/learning-agents/", body(refiner="claude"), format="json"), "refiner")
    assert "ANTHROPIC_API_KEY" in errors["refiner"][0] and "auto" in errors["refiner"][0]
    agent = make_agent(owner=owner, name="optuna-one")
    resp = api.patch(f"/api/learning-agents/{agent.pk}", {"refiner": "claude"}, format="json")
    assert resp.status_code == 400 and "refiner" in resp.json()
    assert TradingAgent.objects.get(pk=agent.pk).refiner == "optuna"
    # auto is the explicit fallback; with a key claude is fine.
    assert api.post("/api/learning-agents/", body(name="auto", refiner="auto"), format="json").status_code == 201
    settings.ANTHROPIC_API_KEY = "sk-ant-test"
    assert api.post("/api/learning-agents/", body(name="cl", refiner="claude"), format="json").status_code == 201


def test_an_existing_claude_agent_stays_editable_after_the_key_is_gone(api, owner, settings):
    settings.ANTHROPIC_API_KEY = "sk-ant-test"
    agent = make_agent(owner=owner, name="was-claude", refiner="claude")
    settings.ANTHROPIC_API_KEY = ""
    resp = api.patch(f"/api/learning-agents/{agent.pk}", {"refiner": "claude", "fee_bps": 3.0}, format="json")
    assert resp.status_code == 200, resp.content


# --- live trading needs a JSON true -----------------------------------------------------------
@pytest.mark.parametrize("confirm", ["yes", 1, "true", "1", "on", 0, None])
def test_only_a_json_true_confirms(api, owner, confirm):
    agent = make_agent(owner=owner, name="grad")
    before = model_to_dict(TradingAgent.objects.get(pk=agent.pk))
    resp = api.post(f"/api/learning-agents/{agent.pk}/graduate", {"confirm": confirm, "reason": "r"},
                       format="json")
    assert resp.status_code == 400 and "confirm" in resp.json(), resp.content
    assert confirm is None or "JSON boolean" in resp.json()["confirm"][0]
    assert model_to_dict(TradingAgent.objects.get(pk=agent.pk)) == before


# --- unknown API paths answer JSON ----------------------------------------------------------
@pytest.mark.parametrize("path", ["/api/learning-agents/not-a-uuid", "/api/learning-agents/{id}/status",
                                  "/api/nothing-here/", "/api/learning-agents/{id}/iterations/abc"])
def test_unknown_api_paths_are_a_json_404(api, owner, path):
    agent = make_agent(owner=owner, name="paths")
    resp = api.get(path.format(id=agent.pk))
    assert resp.status_code == 404
    assert resp["Content-Type"].startswith("application/json")
    assert "no API route" in resp.json()["detail"]


def test_outside_the_api_a_404_is_still_the_html_page(api):
    resp = api.get("/no-such-page/")
    assert resp.status_code == 404 and not resp["Content-Type"].startswith("application/json")


# --- PUT replaces, PATCH changes: thresholds and criteria alike --------------------------------
def test_put_takes_what_is_sent_and_puts_the_rest_back_to_defaults(api, owner):
    agent = make_agent(owner=owner, name="rules")
    base = f"/api/learning-agents/{agent.pk}"
    assert api.patch(base + "/approval-thresholds", {"min_signals": 9}, format="json").status_code == 200
    resp = api.put(base + "/approval-thresholds", {"min_win_rate": 0.55}, format="json")
    assert resp.status_code == 200, resp.content
    assert resp.json()["thresholds"] == {**approval.DEFAULT_THRESHOLDS, "min_win_rate": 0.55}  # min_signals reset

    assert api.patch(base + "/graduation/criteria", {"min_iterations": 20}, format="json").status_code == 200
    resp = api.patch(base + "/graduation/criteria", {"min_sharpe_ratio": 1.0}, format="json")
    assert resp.status_code == 200, resp.content
    assert resp.json()["overrides"] == {"min_iterations": 20, "min_sharpe_ratio": 1.0}  # PATCH keeps
    resp = api.put(base + "/graduation/criteria", {"min_sharpe_ratio": 1.5}, format="json")
    assert resp.json()["overrides"] == {"min_sharpe_ratio": 1.5}  # PUT replaces
    assert resp.json()["criteria"]["min_iterations"] == criteria.defaults()["min_iterations"]


def test_patch_of_criteria_refuses_bad_values_and_changes_nothing(api, owner):
    agent = make_agent(owner=owner, name="crit")
    base = f"/api/learning-agents/{agent.pk}/graduation/criteria"
    api.put(base, {"min_iterations": 7}, format="json")
    resp = api.patch(base, {"min_iterations": -1, "colour": "red"}, format="json")
    assert resp.status_code == 400 and {"min_iterations", "colour"} <= set(resp.json())
    assert TradingAgent.objects.get(pk=agent.pk).graduation_criteria == {"min_iterations": 7}
