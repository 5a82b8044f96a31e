"""Shared knowledge: the trials of an agent's peers, for an opt-in warm start (issue 16, section 2).

**Peers** of an agent: the agents its owner may see (agents.selectors.agents_visible_to(owner):
their own, or every agent for a superuser), with the same strategy template, on the agent's
instrument or on one the owner marked as related (``TradingAgent.related_instruments``), the agent
itself excluded; at most :data:`MAX_PEERS`, the oldest first (a stable choice: a new agent does not
push an established one out).

**Shared trials**: each peer's distinct trials (agents.evaluation.trial_history.agent_history: the
same incremental, per-process cache as the agent's own) with a selection score, minus the sets the
agent has already evaluated itself (those keep its own score). A set tried by several peers is
shared once, with its best score (and the peer that scored it). Of these, the
:data:`MAX_SHARED_TRIALS` best scored are given to the refiner: the warm start's value is where
the peers found good regions, and TPE's "good" set is the top of what it is told.

A peer's score is its selection score on *its* selection data (its instrument, folds and costs):
a prior for where to search, never evidence about this agent. Evidence stays this agent's own:
candidates are backtested on this agent's folds, and the deflated Sharpe ratio counts the shared
trials as trials of the search (agents.services.iteration_evaluation), because they shaped the
choice: N takes the distinct parameter sets of own and shared trials (a set in both counts once),
V the variance of their per-bar selection Sharpe ratios (capped as ``trials.population`` does),
but never below the V of the agent's own trials: the shared trials are the peers' best, a sample
selected on its scores whose Sharpes cluster, and pooled they lowered V, and so the bar, by more
than their number raised it (bench/sharing_quality.py, first run: median DSR 0.035 with sharing
against 0.026 for the same iterations counting own trials only, on null series). With the floor,
sharing can only raise SR0.

Cost per iteration, whatever the number of peers and of their trials:

- queries: 2 to find the peers (the related instruments, then the peers), plus 2 per peer read
  (agent_history reads only the rows stored since its last call): at most 2 + 2 x MAX_PEERS = 34;
  sharing off: none (the switch is a column of the agent row already loaded);
- Python: a scan of at most :data:`PEER_SCAN` distinct sets per peer (the most recently evaluated),
  so at most MAX_PEERS x PEER_SCAN = 8,000 keyed look-ups, then a heap of MAX_SHARED_TRIALS; the
  copies agent_history hands back are linear in a peer's history, but at C speed (~0.05 ms per
  1,000 trials).
"""

import heapq
from dataclasses import dataclass
from itertools import islice

from agents.evaluation.numbers import finite_or_none
from agents.evaluation.trial_history import agent_history
from agents.refiners.base import AgentRef, TriedParams
from agents.selectors import agents_visible_to

MAX_PEERS = 16
PEER_SCAN = 500  # distinct sets read per peer, the most recently evaluated first
MAX_SHARED_TRIALS = 32  # given to the refiner (and stored in each refinement's provenance)


@dataclass(frozen=True)
class SharedTrial:
    params: dict
    score: float
    selection_sharpe: float | None
    agent: AgentRef

    def tried(self):
        return TriedParams(self.params, self.score, from_agent=self.agent)


def agent_peers(agent):
    """The agent's peers (the rule above), oldest first; two queries."""
    instruments = {agent.instrument_id, *agent.related_instruments.values_list("id", flat=True)}
    peers = (agents_visible_to(agent.owner)
             .filter(strategy_template=agent.strategy_template, instrument_id__in=instruments)
             .exclude(pk=agent.pk).order_by("created_at", "id"))
    return list(peers[:MAX_PEERS])


def shared_trials_for(agent, template, own_scores):
    """(peers read, shared trials best first): at most MAX_SHARED_TRIALS, none already in
    ``own_scores`` ({schema_key: score} of the agent's own trials)."""
    peers = agent_peers(agent)
    best = {}  # {key: SharedTrial}, a set tried by several peers kept once with its best score
    for peer in peers:
        ref = AgentRef(str(peer.pk), peer.name)
        _trials, by_key, _scores = agent_history(peer, template)
        # by_key is keyed by schema_key of the template, the same for the agent and its peers.
        for key, trial in islice(reversed(by_key.items()), PEER_SCAN):
            score = finite_or_none(trial.score)
            if score is None:
                continue
            if key in own_scores or (key in best and best[key].score >= score):
                continue
            best[key] = SharedTrial(trial.params, score, trial.selection_sharpe, ref)
    return peers, heapq.nlargest(MAX_SHARED_TRIALS, best.values(), key=lambda t: t.score)


def provenance(peers, shared):
    """What a refinement stores of the warm start it came from (Refinement.provenance)."""
    return {
        "peers": [{"id": str(p.pk), "name": p.name, "instrument_id": p.instrument_id} for p in peers],
        "shared_trials": [{"agent_id": t.agent.id, "agent_name": t.agent.name, "params": t.params,
                           "score": t.score} for t in shared],
    }
