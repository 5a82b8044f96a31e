"""The slow part of a learning iteration, outside any transaction: backtests, the refiner's call,
the statistics and the gate's judgement. It writes nothing; learning.py stores what it returns.

Order, so that the exam stays an exam:

1. the current version is backtested on every selection fold;
2. the refiner proposes from those fold scores and the agent's history (selection scores only);
3. every candidate is backtested on every fold (all of them in one batch) and judged on the selection rules (deflated
   Sharpe over all the agent's trials, the paired test against the current version, the fold
   rules);
4. the sealed test window is read for the current version (its headline score) and, when the
   agent may change by itself, for the best-ranked candidate that passes every selection rule,
   then the next one, until one passes the sealed rule too. Each reading goes into the outcome
   and is recorded by the finishing transaction.
"""

from dataclasses import dataclass, field, replace

from agents.evaluation.backtests import evaluate_sealed, evaluate_selection, evaluate_selections
from agents.evaluation.exam import exam_usage, window_of
from agents.evaluation.peer_trials import provenance, shared_trials_for
from agents.evaluation.protocol import split_protocol
from agents.evaluation.rules import failed
from agents.evaluation.statistics import min_track_record_length, sharpe_stats
from agents.evaluation.trial_history import Trial, add_distinct, agent_history
from agents.evaluation.trials import dsr_of, population, remember_returns, search_pbo
from agents.market.cache import load_bars
from agents.models import ExamPurpose
from agents.refiners.base import RefinerContext, RefinerError, TriedParams, schema_key
from agents.services import approval, approval_gate
from agents.services.ensembles import refreshed_params
from agents.strategies import ensemble
from agents.strategies.registry import get_template


@dataclass
class Setting:
    """What every evaluation of one agent shares: its template, bars, protocol and costs."""

    agent: object
    template: object
    bars: object
    protocol: object
    bars_per_year: float

    def selection(self, params):
        return evaluate_selection(self.agent, self.template, params, self.bars, self.protocol, self.bars_per_year)

    def selections(self, params_list):
        """Every parameter set in one batch (one engine call per fold)."""
        return evaluate_selections(self.agent, self.template, params_list, self.bars, self.protocol,
                                   self.bars_per_year)

    def sealed(self, params, target=None):
        return evaluate_sealed(self.agent, self.template, params, self.bars, self.protocol, self.bars_per_year,
                               target=target)

    @property
    def window(self):
        return window_of(self.bars, self.protocol)


def setting_for(agent):
    bars = load_bars(agent.instrument_id)
    protocol = split_protocol(len(bars), test_fraction=agent.test_fraction, n_folds=agent.n_folds)
    return Setting(agent, get_template(agent.strategy_template), bars, protocol, agent.instrument.bars_per_year)


@dataclass
class Reading:
    purpose: str
    params: dict
    score: float
    candidate_index: int | None = None  # None: the current version


@dataclass
class Outcome:
    windows: dict
    current: object  # SelectionEvaluation
    current_sealed: object  # SealedEvaluation
    proposal: object
    candidates: list  # [(Candidate, SelectionEvaluation, rows, evidence, SealedEvaluation | None)]
    statistics: dict
    readings: list = field(default_factory=list)
    window: tuple = ()
    provenance: dict = field(default_factory=dict)  # stored with each refinement (peer_trials.provenance)


def _trade_summary(trade):
    return {"side": trade.side, "entry_time": str(trade.entry_time)[:19], "exit_time": str(trade.exit_time)[:19],
            "return_pct": round(float(trade.return_pct), 6)}


def iteration_evaluate(iteration, propose):
    """Everything an iteration computes; ``propose(agent, context)`` asks the refiner."""
    agent = iteration.agent
    version = agent.current_version
    if version is None:
        raise RefinerError("the agent has no current strategy version")
    setting = setting_for(agent)
    params = setting.template.validate(version.params)
    current = setting.selection(params)
    remember_returns(agent, setting.bars, setting.protocol, current)
    trials, by_key, scores = agent_history(agent, setting.template)  # stored ones: only the new rows are read
    key_of = schema_key(setting.template)
    peers, shared = [], []
    if agent.share_peer_trials:  # off: not one query more (the switch is on the agent row)
        peers, shared = shared_trials_for(agent, setting.template, {**scores, key_of(params): current.score})
    context = RefinerContext(
        template=setting.template, current_params=params, fold_metrics=current.fold_metrics,
        selection_score=current.score, objective=agent.objective,
        history=[TriedParams(t.params, t.score) for t in trials] + [TriedParams(params, current.score)]
        + [t.tried() for t in shared],
        recent_trades=[_trade_summary(t) for t in current.recent_trades], n_candidates=agent.candidates_per_iteration,
        seed=agent.random_seed + iteration.number, instrument=agent.instrument.symbol, evaluated=scores,
        refreshed=refreshed_params(agent, params) if setting.template.key == ensemble.KEY else None,
    )
    proposal = propose(agent, context)
    evaluated = list(zip(proposal.candidates, setting.selections([c.params for c in proposal.candidates]),
                         strict=True))
    for _c, ev in evaluated:
        remember_returns(agent, setting.bars, setting.protocol, ev)

    add_distinct(by_key, key_of, [_trial(ev) for ev in [current] + [ev for _c, ev in evaluated]])
    n_own = len(by_key)
    # The shared trials shaped the choice, so they are trials of this search: N counts the distinct
    # sets of both (a set in both once, with the agent's own evaluation), V their selection Sharpes.
    searched = {**{key_of(t.params): Trial(t.params, t.score, t.selection_sharpe) for t in shared}, **by_key}
    pop = population(searched, current.stats.t)
    if shared:
        # The shared trials are the peers' best, a sample selected for its scores: their Sharpes
        # cluster and would shrink V, lowering the bar that their number raises (the sharing bench
        # saw it). So sharing may only raise the bar: V is never below the agent's own trials' V.
        own_pop = population(by_key, current.stats.t)
        pop = replace(pop, variance=max(pop.variance, own_pop.variance))
    pbo, pbo_trials = search_pbo(agent, setting.template, setting.bars, setting.protocol, setting.bars_per_year,
                                 [current] + [ev for _c, ev in evaluated], by_key)
    values = approval.effective_thresholds(agent)
    judged = []
    for candidate, ev in evaluated:
        evidence = approval_gate.selection_evidence(ev, current, pop)
        rows = approval_gate.judge_selection(values, ev, evidence, len(setting.protocol.folds))
        judged.append([candidate, ev, rows, evidence, None])

    current_sealed = setting.sealed(params, target=current.target)
    readings = [Reading(ExamPurpose.REPORT, params, current_sealed.score)]
    if agent.auto_approve_enabled and approval.automatic_application_refused(agent) is None:
        _examine(setting, judged, current_sealed, values, readings)

    stats = current.stats
    statistics = {
        "dsr": dsr_of(stats, pop), "pbo": pbo.pbo if pbo is not None else None,
        "pbo_trials": pbo_trials, "pbo_combinations": pbo.n_combinations if pbo is not None else None,
        "n_trials": pop.n_trials, "n_trials_own": n_own, "n_trials_shared": pop.n_trials - n_own,
        "peers_read": len(peers), "shared_trials_given": len(shared), "trials_sharpe_variance": pop.cross_variance,
        "null_sharpe_variance": pop.null_variance, "dsr_variance": pop.variance,
        "selection_sharpe": stats.sr, "selection_bars": stats.t, "skew": stats.skew, "kurtosis": stats.kurt,
        "test_bars": setting.protocol.test.stop - setting.protocol.test.start,
        "test_trades": len(current_sealed.trades),
        "fold_scores": current.fold_scores,
    }
    test_stats = sharpe_stats(current_sealed.returns)
    statistics.update(test_sharpe=test_stats.sr, test_skew=test_stats.skew, test_kurtosis=test_stats.kurt,
                      min_track_record_bars=_finite(min_track_record_length(test_stats.sr, test_stats.skew,
                                                                            test_stats.kurt)))
    return Outcome(
        windows=setting.protocol.describe(setting.bars), current=current, current_sealed=current_sealed,
        proposal=proposal, candidates=judged, statistics=statistics, readings=readings, window=setting.window,
        provenance=provenance(peers, shared) if agent.share_peer_trials else {},
    )


def _examine(setting, judged, current_sealed, values, readings):
    """Read the exam for the best-ranked candidates passing the selection rules, until one passes."""
    before = exam_usage(setting.agent.pk, setting.window[0])
    ranked = sorted((i for i, j in enumerate(judged) if not failed(j[2])), key=lambda i: -judged[i][1].score)
    for looked, index in enumerate(ranked, start=1):
        _candidate, ev, rows, _evidence, _ = judged[index]
        sealed = setting.sealed(ev.params, target=ev.target)
        judged[index][4] = sealed
        readings.append(Reading(ExamPurpose.APPROVAL, ev.params, sealed.score, candidate_index=index))
        # Counted with this iteration's own readings (the report reading and these looks).
        usage = {"readings": before["readings"] + len(readings), "distinct_params": before["distinct_params"] + looked}
        row = approval_gate.judge_sealed(values, sealed.score, current_sealed.score, usage)
        rows.append(row)
        if row["passed"]:
            return


def _trial(evaluation):
    return Trial(evaluation.params, evaluation.score, evaluation.stats.sr)


def _finite(value):
    return None if value == float("inf") else float(value)
