"""Shared knowledge (issue 16 §2): peers, the warm start's provenance, the DSR counting shared
trials (against scipy), and the opt-in costing nothing when it is off."""

import math

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from scipy.stats import norm

from agents.evaluation.peer_trials import MAX_SHARED_TRIALS, agent_peers
from agents.market.cache import load_bars
from agents.models import IterationStatus, LearningIteration, Refinement
from agents.services import learning
from agents.services.agents import agent_update
from tests.factories import InstrumentFactory, UserFactory, make_agent, random_walk_bars

pytestmark = pytest.mark.django_db
EULER_GAMMA = 0.5772156649015329


@pytest.fixture
def market():
    return random_walk_bars(InstrumentFactory(symbol="SHARE1"), n=600, seed=11)


def _run(agent, times=1):
    for _ in range(times):
        iteration, _ = learning.iteration_run_now(agent, trigger="manual")
        assert iteration.status == IterationStatus.SUCCEEDED, iteration.error
        agent.refresh_from_db()
    return iteration


def _key(params):
    return tuple(sorted((k, round(v, 12) if isinstance(v, float) else v) for k, v in params.items()))


def _stored(agent):
    """{key: selection Sharpe} of the agent's stored trials, read straight from its rows (the latest
    evaluation of a set wins, as the lab's trial history says)."""
    rows = [(r.iteration_id, 1, r.pk, r.proposed_params, r.selection_sharpe)
            for r in Refinement.objects.filter(agent=agent)]
    rows += [(i.pk, 0, i.pk, i.version.params, i.selection_sharpe)
             for i in LearningIteration.objects.filter(agent=agent, status=IterationStatus.SUCCEEDED)]
    return {_key(params): sharpe for *_order, params, sharpe in sorted(rows, key=lambda r: r[:3])}


def test_peers_follow_the_owner_rule_the_template_and_the_related_instruments(market):
    owner, stranger = UserFactory(), UserFactory()
    other_market = random_walk_bars(InstrumentFactory(symbol="SHARE2"), n=300, seed=12)
    agent = make_agent(owner=owner, instrument=market, name="me")
    same = make_agent(owner=owner, instrument=market, name="same")
    make_agent(owner=owner, instrument=market, template="ema_macd", name="other template")
    related = make_agent(owner=owner, instrument=other_market, name="related market")
    theirs = make_agent(owner=stranger, instrument=market, name="another owner's")
    assert agent_peers(agent) == [same]  # not itself, not another template, not another owner's
    agent_update(agent, actor=owner, related_instruments=["SHARE2"])
    assert agent_peers(agent) == [same, related]
    owner.is_superuser = True  # a superuser sees every agent: its peers too
    owner.save()
    agent.refresh_from_db()
    assert agent_peers(agent) == [same, related, theirs]


def test_a_warm_start_is_stored_with_its_provenance_and_counted_in_the_dsr(market):
    peer = make_agent(instrument=market, name="veteran")
    _run(peer, times=2)
    agent = make_agent(owner=peer.owner, instrument=market, name="newcomer", share_peer_trials=True)
    iteration = _run(agent)

    stored = list(Refinement.objects.filter(iteration=iteration).order_by("id"))
    provenance = stored[0].provenance
    assert all(r.provenance == provenance for r in stored)
    assert provenance["peers"] == [{"id": str(peer.pk), "name": "veteran", "instrument_id": market.pk}]
    shared = provenance["shared_trials"]
    peer_rows = {_key(r.proposed_params): r.score for r in Refinement.objects.filter(agent=peer)}
    assert 0 < len(shared) <= MAX_SHARED_TRIALS
    for trial in shared:
        assert (trial["agent_id"], trial["agent_name"]) == (str(peer.pk), "veteran")
        assert trial["score"] == pytest.approx(peer_rows[_key(trial["params"])])
    # The agent's own initial set is the peer's initial set too: its own score wins, not shared.
    assert _key(agent.versions.get(number=1).params) not in {_key(t["params"]) for t in shared}
    assert [s["score"] for s in shared] == sorted((s["score"] for s in shared), reverse=True)
    # The best peer sets are proposed as they are (the warm start), then TPE.
    assert stored[0].proposed_params == shared[0]["params"] and "warm start" in stored[0].rationale

    # Independent DSR: N the distinct sets of own and shared trials, V their Sharpes' variance
    # capped at 1 / (T - 1), SR0 and DSR of Bailey & Lopez de Prado (2014) written out.
    own = _stored(agent)
    peer_sharpes = _stored(peer)
    searched = {**{_key(t["params"]): peer_sharpes[_key(t["params"])] for t in shared}, **own}
    ev = iteration.evidence
    n, t = len(searched), ev["selection_bars"]
    assert (ev["n_trials"], ev["n_trials_own"], ev["n_trials_shared"]) == (n, len(own), n - len(own))
    overlap = set(own) & {_key(t["params"]) for t in shared}  # peer sets the agent then proposed itself
    assert overlap and ev["n_trials_shared"] > 0
    assert n == len(own) + len(shared) - len(overlap)  # a set in both counts once
    # Sharing never lowers V below the agent's own trials' (the peers' best cluster: see the module).
    null = 1.0 / (t - 1)
    variance = max(min(np.var(list(searched.values()), ddof=1), null), min(np.var(list(own.values()), ddof=1), null))
    sr, skew, kurt = ev["selection_sharpe"], ev["skew"], ev["kurtosis"]

    def sr0(n, v):
        return math.sqrt(v) * ((1 - EULER_GAMMA) * norm.ppf(1 - 1 / n) + EULER_GAMMA * norm.ppf(1 - 1 / (n * math.e)))

    def dsr(bar):
        return norm.cdf((sr - bar) * math.sqrt(t - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr * sr))

    assert iteration.dsr == pytest.approx(dsr(sr0(n, variance)), rel=1e-9, abs=1e-12)
    assert ev["dsr_variance"] == pytest.approx(variance)
    # Counting the shared trials raises the bar over the agent's own trials alone.
    own_bar = sr0(len(own), min(np.var(list(own.values()), ddof=1), null))
    assert sr0(n, variance) > own_bar and iteration.dsr <= dsr(own_bar)


def test_sharing_off_reads_no_peer_and_on_costs_two_queries_plus_two_a_peer(market):
    lone = make_agent(instrument=random_walk_bars(InstrumentFactory(), n=600, seed=11))
    load_bars(lone.instrument_id)  # its bars cached, as the peers' market will be: the same queries
    with CaptureQueriesContext(connection) as alone:
        _run(lone)
    owner = UserFactory()
    peers = [make_agent(owner=owner, instrument=market, name=f"peer {i}") for i in range(3)]
    for peer in peers:
        _run(peer)
    off = make_agent(owner=owner, instrument=market, name="off")
    with CaptureQueriesContext(connection) as without:
        iteration = _run(off)
    assert len(without) == len(alone)
    assert iteration.evidence["peers_read"] == 0 and iteration.refinements.first().provenance == {}
    on = make_agent(owner=owner, instrument=market, name="on", share_peer_trials=True)
    with CaptureQueriesContext(connection) as shared:
        iteration = _run(on)
    assert iteration.evidence["peers_read"] == 4  # the three and "off"
    assert len(shared) == len(alone) + 2 + 2 * 4
