import pytest
from rest_framework.test import APIClient

from agents.models import (
    ActivityLog,
    IterationStatus,
    LearningIteration,
    Refinement,
    RefinementStatus,
    StrategyVersion,
    TradingAgent,
)
from agents.services import learning
from agents.tasks import run_iteration_task
from tests.factories import InstrumentFactory, UserFactory, make_agent, random_walk_bars

pytestmark = pytest.mark.django_db


@pytest.fixture
def instrument():
    return random_walk_bars(InstrumentFactory(symbol="SYNA"))


def base(agent):
    return f"/api/learning-agents/{agent.pk}"


def test_anonymous_is_refused():
    assert APIClient().get("/api/learning-agents").status_code == 403


def test_create_agent_and_read_it_back(api, instrument):
    resp = api.post(
        "/api/learning-agents",
        {"name": "Trend", "instrument": "SYNA", "strategy_template": "sma_crossover", "params": {"fast": 10}},
        format="json",
    )
    assert resp.status_code == 201, resp.data
    assert resp.data["current_version"]["number"] == 1
    assert resp.data["current_version"]["params"]["fast"] == 10
    assert resp.data["current_version"]["params"]["slow"] == 50  # default filled in
    assert resp.data["status"] == "learning"
    detail = api.get(f"/api/learning-agents/{resp.data['id']}/")
    assert detail.status_code == 200 and detail.data["name"] == "Trend"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"params": {"fast": 60, "slow": 50}}, "params.fast"),
        ({"params": {"nope": 1}}, "params.nope"),
        ({"params": {"fast": "ten"}}, "params.fast"),
        ({"instrument": "NOPE"}, "instrument"),
        ({"strategy_template": "astrology"}, "strategy_template"),
        ({"fee_bps": -1}, "fee_bps"),
        ({"test_fraction": 0.99}, "test_fraction"),
        ({"n_folds": 1}, "n_folds"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_create_names_the_field_and_writes_nothing(api, instrument, payload, field):
    body = {"name": "Trend", "instrument": "SYNA", "strategy_template": "sma_crossover", **payload}
    resp = api.post("/api/learning-agents/", body, format="json")
    assert resp.status_code == 400
    assert field in resp.data, resp.data
    assert TradingAgent.objects.count() == 0 and StrategyVersion.objects.count() == 0


def test_duplicate_name_is_refused(api, user, instrument):
    make_agent(owner=user, instrument=instrument, name="Trend")
    resp = api.post(
        "/api/learning-agents", {"name": "Trend", "instrument": "SYNA", "strategy_template": "sma_crossover"},
        format="json",
    )
    assert resp.status_code == 400 and "name" in resp.data


def test_owners_see_only_their_agents(api, user, instrument):
    mine = make_agent(owner=user, instrument=instrument)
    theirs = make_agent(owner=UserFactory(username="bob"), instrument=instrument)
    listed = api.get("/api/learning-agents").data["results"]
    assert [a["id"] for a in listed] == [str(mine.pk)]
    for path in ("", "/iterations", "/refinements", "/versions", "/activity", "/performance"):
        assert api.get(base(theirs) + path).status_code == 404, path
    assert api.post(base(theirs) + "/iterations").status_code == 404
    assert api.delete(base(theirs)).status_code == 404


def test_superusers_see_all(instrument):
    make_agent(owner=UserFactory(username="bob"), instrument=instrument)
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    c = APIClient()
    c.force_authenticate(root)
    assert c.get("/api/learning-agents").data["count"] == 1


def test_filters_and_ordering(api, user, instrument):
    make_agent(owner=user, instrument=instrument, name="b", template="sma_crossover")
    make_agent(owner=user, instrument=instrument, name="a", template="donchian_breakout")
    names = [a["name"] for a in api.get("/api/learning-agents?ordering=-name").data["results"]]
    assert names == ["b", "a"]
    only = api.get("/api/learning-agents?template=donchian_breakout").data["results"]
    assert [a["name"] for a in only] == ["a"]
    assert api.get("/api/learning-agents?instrument=syna").data["count"] == 2


def test_patch_edits_settings_but_not_status_or_version(api, user, instrument):
    agent = make_agent(owner=user, instrument=instrument)
    resp = api.patch(base(agent), {"fee_bps": 2.5}, format="json")
    assert resp.status_code == 200 and resp.data["fee_bps"] == 2.5
    resp = api.patch(base(agent), {"status": "live_trading"}, format="json")
    assert resp.status_code == 400 and "status" in resp.data
    agent.refresh_from_db()
    assert agent.status == "learning"


def test_start_iteration_queues_it_and_the_worker_task_runs_it(api, user, instrument,
                                                                django_capture_on_commit_callbacks):
    agent = make_agent(owner=user, instrument=instrument)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        resp = api.post(base(agent) + "/iterations/")
    assert resp.status_code == 202
    assert resp.data["status"] == "queued"
    assert len(callbacks) == 1  # the task is sent only after commit
    run_iteration_task(resp.data["id"])
    detail = api.get(base(agent) + f"/iterations/{resp.data['id']}")
    assert detail.status_code == 200
    assert detail.data["status"] == "succeeded"
    assert api.get(base(agent) + "/iterations?status=succeeded").data["count"] == 1
    assert api.get(base(agent) + "/iterations?status=failed").data["count"] == 0


def test_wait_true_runs_inline(api, user, instrument):
    agent = make_agent(owner=user, instrument=instrument)
    resp = api.post(base(agent) + "/iterations?wait=true")
    assert resp.status_code == 200
    assert resp.data["status"] == "succeeded"
    assert resp.data["score"] is not None


def test_approve_apply_reject_and_rollback(api, user, instrument):
    agent = make_agent(owner=user, instrument=instrument)
    learning.iteration_run_now(agent, trigger="api")
    pending = api.get(base(agent) + "/refinements?status=pending").data["results"]
    assert len(pending) == agent.candidates_per_iteration
    best, other = pending[0], pending[1]
    assert api.post(base(agent) + f"/refinements/{best['id']}/approve", {"reason": "looks good"}).status_code == 200
    assert api.post(base(agent) + f"/refinements/{other['id']}/reject/").status_code == 200
    # Deciding twice is a conflict, not a silent overwrite.
    assert api.post(base(agent) + f"/refinements/{other['id']}/approve").status_code == 409
    applied = api.post(base(agent) + "/refinements/apply")
    assert applied.status_code == 201
    assert applied.data["number"] == 2 and applied.data["origin"] == "refinement"
    assert applied.data["params"] == Refinement.objects.get(pk=best["id"]).proposed_params
    assert Refinement.objects.get(pk=best["id"]).status == RefinementStatus.APPLIED
    assert api.post(base(agent) + "/refinements/apply").status_code == 409  # nothing approved left

    v1 = StrategyVersion.objects.get(agent=agent, number=1)
    rolled = api.post(base(agent) + f"/versions/{v1.pk}/rollback", {"reason": "too risky"})
    assert rolled.status_code == 201
    assert rolled.data["number"] == 3 and rolled.data["origin"] == "rollback"
    assert rolled.data["params"] == v1.params
    versions = api.get(base(agent) + "/versions").data["results"]
    assert [v["number"] for v in versions] == [3, 2, 1]
    events = set(ActivityLog.objects.filter(agent=agent, actor=user).values_list("event", flat=True))
    assert {"refinement_approved", "refinement_rejected", "refinement_applied", "version_rolled_back"} <= events


def test_performance_and_activity(api, user, instrument):
    agent = make_agent(owner=user, instrument=instrument)
    learning.iteration_run_now(agent, trigger="api")
    learning.iteration_run_now(agent, trigger="api")
    perf = api.get(base(agent) + "/performance").data
    assert perf["iterations"] == {"total": 2, "succeeded": 2, "failed": 0}
    assert [p["iteration"] for p in perf["series"]] == [1, 2]
    activity = api.get(base(agent) + "/activity").data["results"]
    assert activity[0]["event"] == "iteration_succeeded"


def test_strategies_and_instruments(api, instrument):
    strategies = api.get("/api/strategies").data
    keys = {s["key"] for s in strategies}
    assert {"sma_crossover", "ema_macd", "rsi_reversion", "bollinger_reversion", "donchian_breakout"} <= keys
    sma = next(s for s in strategies if s["key"] == "sma_crossover")
    assert sma["params"]["fast"]["min"] == 1
    instruments = api.get("/api/instruments/").data
    assert instruments[0]["symbol"] == "SYNA" and instruments[0]["bar_count"] == 600


def test_delete_agent(api, user, instrument):
    agent = make_agent(owner=user, instrument=instrument)
    assert api.delete(base(agent)).status_code == 204
    assert not TradingAgent.objects.filter(pk=agent.pk).exists()


def test_openapi_schema_and_docs(api):
    resp = api.get("/api/schema/")
    assert resp.status_code == 200
    assert b"/api/learning-agents/{id}/iterations" in resp.content
    assert api.get("/api/docs/").status_code == 200


@pytest.mark.parametrize("page_size", [2, 20])
def test_list_query_count_is_independent_of_page_size(api, user, instrument, page_size,
                                                       django_assert_max_num_queries):
    for i in range(20):
        make_agent(owner=user, instrument=instrument, name=f"agent {i:02d}")
    agent = TradingAgent.objects.first()
    LearningIteration.objects.bulk_create(
        [LearningIteration(agent=agent, number=i + 1, status=IterationStatus.SUCCEEDED, version=agent.current_version)
         for i in range(20)]
    )
    with django_assert_max_num_queries(6):
        assert len(api.get(f"/api/learning-agents?page_size={page_size}").data["results"]) == page_size
    with django_assert_max_num_queries(6):
        assert len(api.get(base(agent) + f"/iterations?page_size={page_size}").data["results"]) == page_size


def test_openapi_schema_generates_without_warnings(tmp_path):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
    assert (tmp_path / "schema.yml").stat().st_size > 1000
