"""The warm start as the refiners see it (Optuna replays and proposes peers' trials, Claude's prompt
lists them apart), and the sharing settings through the API."""

import numpy as np
import optuna
import pytest
from django.contrib import admin
from rest_framework.test import APIClient

from agents.models import IterationStatus, Refinement
from agents.refiners.base import AgentRef, RefinerContext, TriedParams
from agents.refiners.optuna_refiner import MAX_REPLAYED, SHARED_REPLAYED, OptunaRefiner, search_space
from agents.services import learning
from agents.strategies.registry import get_template
from tests.factories import InstrumentFactory, UserFactory, make_agent, random_walk_bars
from tests.fake_anthropic import FakeAnthropic, message, sma_candidates

PEER = AgentRef("5b0c6a4e-0000-4000-8000-000000000001", "veteran")
SMA = get_template("sma_crossover")


def sma(fast, slow, **rest):
    return SMA.validate({"fast": fast, "slow": slow, **rest})


def context(own, shared, n=6, seed=3):
    return RefinerContext(
        template=SMA, current_params=sma(20, 50), fold_metrics=[{"sharpe": 0.1}], selection_score=0.1,
        objective="sharpe", history=[TriedParams(p, s) for p, s in own]
        + [TriedParams(p, s, from_agent=PEER) for p, s in shared],
        recent_trades=[], n_candidates=n, seed=seed, instrument="SYN",
    )


def test_optuna_proposes_the_best_peer_sets_not_evaluated_here_first():
    own = [(sma(20, 50), 0.1), (sma(5, 30), 0.4)]
    shared = [(sma(5, 30), 2.0), (sma(40, 150), 1.5), (sma(42, 160), 1.2), (sma(60, 90), 0.3)]
    result = OptunaRefiner().propose(context(own, shared))
    # (5, 30) was evaluated by the agent itself: its own score stands, it is not proposed again.
    assert [c.params for c in result.candidates[:2]] == [sma(40, 150), sma(42, 160)]
    assert "warm start: peer veteran" in result.candidates[0].rationale
    assert sma(5, 30) not in [c.params for c in result.candidates]


def test_optuna_replays_peers_trials_within_the_same_bound():
    rng = np.random.default_rng(4)
    own, seen = [], set()
    while len(own) < 100:
        fast, slow = int(rng.integers(1, 100)), int(rng.integers(101, 400))
        if (fast, slow) not in seen:
            seen.add((fast, slow))
            own.append((sma(fast, slow), float(rng.normal())))
    shared = [(sma(100 + i, 300 + i), 1.0 + i / 100) for i in range(40)]
    study = optuna.create_study(direction="maximize")
    distributions, _fixed = search_space(SMA)
    ctx = context(own, shared)
    OptunaRefiner()._seed(study, ctx, distributions, ctx.current_params)
    points = [(t.params["fast"], t.params["slow"]) for t in study.trials]
    assert len(points) <= MAX_REPLAYED + 1  # + the current version
    assert sum(fast >= 100 for fast, _slow in points) == SHARED_REPLAYED  # the first (best) 32 of the 40
    assert len(points) - SHARED_REPLAYED >= MAX_REPLAYED // 2  # the agent's own keep at least half


def test_tpe_searches_where_the_peers_scored_well():
    rng = np.random.default_rng(9)
    own = [(sma(int(f), int(f) + int(g)), -0.5) for f, g in zip(rng.integers(2, 30, 12), rng.integers(5, 60, 12),
                                                               strict=True)]
    shared = [(sma(80 + 2 * i, 300 + 3 * i), 2.0 - i / 50) for i in range(20)]
    region = np.array([90.0, 315.0])

    def distance(shared_trials):
        candidates = OptunaRefiner().propose(context(own, shared_trials, n=8)).candidates
        tpe = [c.params for c in candidates if c.rationale.startswith("TPE")]
        assert tpe
        return np.mean([np.hypot(*(np.array([p["fast"], p["slow"]]) - region)) for p in tpe])

    assert distance(shared) < 0.5 * distance([])


@pytest.mark.django_db
def test_claude_is_told_the_peers_trials_apart_from_its_own(settings):
    settings.ANTHROPIC_API_KEY = "sk-ant-test-secret-key-0123456789"
    settings.ANTHROPIC_MAX_RETRIES = 1
    market = random_walk_bars(InstrumentFactory(), n=600, seed=11)
    peer = make_agent(instrument=market, name="veteran")
    learning.iteration_run_now(peer, trigger="manual")
    with FakeAnthropic((200, message(sma_candidates([(10, 30), (15, 60)])))) as fake:
        settings.ANTHROPIC_BASE_URL = fake.url
        agent = make_agent(owner=peer.owner, instrument=market, refiner="claude", candidates_per_iteration=2,
                           share_peer_trials=True)
        iteration, _ = learning.iteration_run_now(agent, trigger="manual")
    assert iteration.status == IterationStatus.SUCCEEDED and iteration.refiner_used == "claude", iteration.error
    prompt = fake.requests[0]["body"]["messages"][0]["content"]
    if not isinstance(prompt, str):
        prompt = "".join(block.get("text", "") for block in prompt)
    own_part, _, peer_part = prompt.partition("Parameter sets tried by peer agents")
    assert "Parameter sets already evaluated by this agent: 1 " in own_part
    assert peer_part.count('"agent": "veteran"') == len(iteration.refinements.first().provenance["shared_trials"])
    assert "veteran" not in own_part
    # The provenance is in the API (and read-only on the console's refinement page).
    api = APIClient()
    api.force_authenticate(agent.owner)
    listed = api.get(f"/api/learning-agents/{agent.pk}/refinements").json()["results"]
    stored = {r.pk: r.provenance for r in iteration.refinements.all()}
    assert listed and all(row["provenance"] == stored[row["id"]] for row in listed)
    assert stored[listed[0]["id"]]["shared_trials"][0]["agent_name"] == "veteran"
    assert "provenance" in admin.site._registry[Refinement].readonly_fields


@pytest.mark.django_db
def test_the_api_edits_the_switch_and_the_related_instruments_by_symbol():
    owner = UserFactory()
    agent = make_agent(owner=owner)
    InstrumentFactory(symbol="RELATED1")
    api = APIClient()
    api.force_authenticate(owner)
    url = f"/api/learning-agents/{agent.pk}"
    assert api.get(url).json()["share_peer_trials"] is False  # off by default
    resp = api.patch(url, {"share_peer_trials": True, "related_instruments": ["RELATED1"]}, format="json")
    assert resp.status_code == 200, resp.content
    assert (resp.json()["share_peer_trials"], resp.json()["related_instruments"]) == (True, ["RELATED1"])
    resp = api.patch(url, {"related_instruments": ["RELATED1", "NOPE", "ALSO-NOT"]}, format="json")
    assert (resp.status_code, resp.json()) == (
        400, {"related_instruments": ["unknown instrument symbol(s): ALSO-NOT, NOPE"]})
    resp = api.patch(url, {"related_instruments": "RELATED1", "share_peer_trials": "yes"}, format="json")
    assert resp.status_code == 400
    assert resp.json() == {"related_instruments": ["must be a list of instrument symbols"],
                           "share_peer_trials": ["must be true or false"]}
    agent.refresh_from_db()  # the refusals changed nothing
    assert agent.share_peer_trials is True
    assert list(agent.related_instruments.values_list("symbol", flat=True)) == ["RELATED1"]
    assert api.patch(url, {"related_instruments": []}, format="json").json()["related_instruments"] == []
