"""The agent's search as a whole: every parameter set it tried, and what that does to a score.

A *trial* is a distinct parameter set the agent evaluated on its selection data (refinement
candidates and evaluated versions; a set tried twice counts once). From them:

- the **deflated Sharpe ratio** of a parameter set (Bailey & López de Prado 2014): its per-bar
  selection Sharpe, skewness and kurtosis over T selection bars, tested against the Sharpe that
  the best of N unskilled trials would reach by luck, with N the number of distinct trials and V
  the variance of their per-bar selection Sharpe ratios
  (:func:`agents.evaluation.statistics.deflated_sharpe`). Trials from before the protocol have
  no selection Sharpe: they count in N but not in V.

  V is capped at the variance that luck alone gives a Sharpe estimate on T bars when the true
  Sharpe is 0, 1 / (T - 1) (Lo 2002; the skewness and kurtosis terms vanish at SR = 0):
  ``V = min(var(SR_n), 1 / (T - 1))``. SR0 is the best Sharpe that N *unskilled* trials reach by
  luck, so V stands for the dispersion of null estimates. On noise the trials' dispersion is that
  (or less, when they are correlated: the paper's estimate, kept). When the trials differ in real
  skill - a search on a series with an edge tries good and poor windows - their dispersion holds
  those differences too, and using it as luck would raise the bar by the very edge it is meant to
  test: a Sharpe-3 strategy after 160 trials read as barely significant. Dispersion beyond what
  noise can produce is evidence of skill, not of luck, so it does not raise the bar. Both
  variances are stored with the evidence.
- the **probability of backtest overfitting** of the search (Bailey, Borwein, López de Prado &
  Zhu 2015), by combinatorially symmetric cross-validation over the per-bar selection returns of
  up to :data:`PBO_MAX_TRIALS` trials (this iteration's and the most recent others: a bounded
  cost whatever the history), in :data:`PBO_BLOCKS` blocks. CSCV ranks the in-sample best among
  N *alternative* strategies out of sample; parameter sets whose selection returns correlate above
  :data:`PBO_DUPLICATE_CORRELATION` with a better one are the same strategy under another name
  (fast 3 vs 4), and counted apart they would split its rank at random and push PBO towards 0.5
  whatever the edge. So each such group enters once, by its best member (the highest Sharpe).

Cost per iteration (issue 13 §3):

- PBO is bounded whatever the history: CSCV over at most :data:`PBO_MAX_TRIALS` columns in
  :data:`PBO_BLOCKS` blocks, i.e. C(10, 5) = 252 splits of a T x 48 matrix. The columns' selection
  returns come from a per-process LRU cache of :data:`_RETURNS_CACHE_SIZE` vectors (one float per
  selection bar: 4,000 bars is 32 kB, so at most 32 MB), filled as each evaluation is made; a
  trial evicted since costs one selection backtest, at most 47 in an iteration.
- N and V come from the agent's distinct trials, which each process keeps and extends with the
  rows stored since its last read (agents.evaluation.trial_history: two queries, keyed by the
  last refinement and iteration ids), equal to a full scan; what is left linear is one pass of
  numpy over the distinct trials' Sharpe ratios (about 0.1 ms for 5,000).
"""

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from agents.evaluation.backtests import evaluate_selection
from agents.evaluation.statistics import deflated_sharpe, pbo_cscv
from agents.refiners.base import clean_or_none, params_key

PBO_MAX_TRIALS = 48
PBO_BLOCKS = 10
PBO_DUPLICATE_CORRELATION = 0.9
_RETURNS_CACHE_SIZE = 1024
_returns_cache = OrderedDict()


@dataclass(frozen=True)
class Population:
    n_trials: int
    variance: float  # V used by the DSR: the cross-sectional variance capped at the null's
    cross_variance: float  # of per-bar selection Sharpe ratios; 0.0 with fewer than 2 known
    null_variance: float  # 1 / (T - 1)
    n_with_sharpe: int


def population(trials_by_key, selection_bars):
    sharpes = np.array([t.selection_sharpe for t in trials_by_key.values() if t.selection_sharpe is not None])
    cross = float(sharpes.var(ddof=1)) if len(sharpes) >= 2 else 0.0
    null = 1.0 / (selection_bars - 1) if selection_bars > 1 else 0.0
    return Population(n_trials=len(trials_by_key), variance=min(cross, null), cross_variance=cross,
                      null_variance=null, n_with_sharpe=len(sharpes))


def dsr_of(stats, pop):
    return deflated_sharpe(stats.sr, stats.t, stats.skew, stats.kurt, max(pop.n_trials, 1), pop.variance)


def _cache_key(agent, bars, protocol, params):
    return (agent.instrument_id, len(bars), str(bars.timestamps[-1]), protocol.folds[0].start,
            protocol.folds[-1].stop, len(protocol.folds), agent.fee_bps, agent.slippage_bps,
            params_key(params))


def remember_returns(agent, bars, protocol, evaluation):
    _put(_cache_key(agent, bars, protocol, evaluation.params), evaluation.returns)


def _put(key, returns):
    _returns_cache[key] = returns
    _returns_cache.move_to_end(key)
    while len(_returns_cache) > _RETURNS_CACHE_SIZE:
        _returns_cache.popitem(last=False)


def selection_returns(agent, template, params, bars, protocol, bars_per_year):
    """The stitched selection returns of ``params`` (cached per instrument data, folds and costs)."""
    key = _cache_key(agent, bars, protocol, params)
    cached = _returns_cache.get(key)
    if cached is None:
        cached = evaluate_selection(agent, template, params, bars, protocol, bars_per_year).returns
        _put(key, cached)
    else:
        _returns_cache.move_to_end(key)
    return cached


def search_pbo(agent, template, bars, protocol, bars_per_year, evaluated, trials_by_key):
    """(PBO result or None, trials used). ``evaluated``: this iteration's SelectionEvaluations."""
    chosen = {params_key(e.params): e.returns for e in evaluated}
    for key, trial in reversed(list(trials_by_key.items())):
        if len(chosen) >= PBO_MAX_TRIALS:
            break
        if key not in chosen:
            clean = clean_or_none(template, trial.params)
            if clean is not None:
                chosen[key] = selection_returns(agent, template, clean, bars, protocol, bars_per_year)
    if len(chosen) < 2:
        return None, len(chosen)
    matrix = distinct_strategies(np.column_stack(list(chosen.values())))
    if matrix.shape[1] < 2 or matrix.shape[0] < PBO_BLOCKS * 2:
        return None, matrix.shape[1]
    return pbo_cscv(matrix, n_blocks=PBO_BLOCKS), matrix.shape[1]


def distinct_strategies(matrix, threshold=PBO_DUPLICATE_CORRELATION):
    """The columns of ``matrix`` (T x N returns) with near-duplicates removed: best Sharpe first,
    a column is kept unless its correlation with a kept one exceeds ``threshold``."""
    mean, sd = matrix.mean(axis=0), matrix.std(axis=0, ddof=1)
    live = sd > 0
    sharpe = np.where(live, mean / np.where(live, sd, 1.0), 0.0)
    z = np.where(live, (matrix - mean) / np.where(live, sd, 1.0), 0.0)
    corr = z.T @ z / max(len(matrix) - 1, 1)
    kept = []
    for j in np.argsort(-sharpe, kind="stable"):
        if not kept or not live[j] or np.max(corr[j, kept]) <= threshold:
            kept.append(j)
    return matrix[:, sorted(kept)]
