"""Optuna (TPE, ask-and-tell) refiner: the optimiser that needs no LLM.

Each call builds a fresh in-memory study, replays a **bounded** sample of the agent's evaluated
history into it (so iteration k continues the search of iterations 1..k-1), then asks for new
points. The sampler is seeded with `ctx.seed` (seed + iteration number), so the same context
always yields the same candidates.

Cost flat in the history (bench/refiner_cost.py measures the options side by side): replaying
everything made a proposal 19x slower after 5,000 trials than after 50, and a persisted study per
agent (JournalStorage, ask and tell only) still 12x: TPE models every trial of its study on every
ask (its cost is linear in the trials it holds: 50 -> 100 trials is 1.5x), and opening a journal
replays its whole log (9x even with a random sampler). Bounded, the ratio is 1.48. So at
most :data:`MAX_REPLAYED` trials are replayed: the :data:`BEST_KEPT` best scored (TPE's "good"
set, the top 10% of what it is given, is then always the full history's very best), the
:data:`RECENT_KEPT` most recent (where the search is now; TPE weighs older trials down anyway),
and an even stride over the rest (the shape of what was explored). Only duplicate detection reads
the whole history, by a cheap key (base.schema_key).

Warm start from peers (agents.evaluation.peer_trials; opt-in): the peers' trials share the same
bound. Up to :data:`SHARED_REPLAYED` of them (the best scored: the caller gives them best first)
take their slots first and the agent's own trials the rest (``MAX_REPLAYED`` minus those, never
fewer than half), picked as above. So a newcomer's study starts from what its peers learnt and an
established agent's own search still dominates its study. A peer's score was measured on the
peer's data, so it only guides; and the first :data:`SHARED_PROPOSED` of a batch are the best
peer sets the agent has not evaluated itself yet, proposed as they are: the cheapest way to learn
whether what worked for a peer works here.

Cross-parameter rules (fast < slow ...) are not expressible as Optuna distributions. A sampled
point that `template.validate` refuses is told to the study as infeasible
(`Trial.set_constraint`), so TPE puts it with the bad trials and moves away from the region, and
we ask again, a bounded number of times. If TPE still has not filled the batch, valid points are
drawn at random from the same distributions (bounded too): a template's rules can slow the search
down but never stop an iteration. Only a search space with nothing new left is a RefinerError.
"""

import heapq
import logging
import math

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers._tpe import _truncnorm
from optuna.trial import TrialState, create_trial

from agents.evaluation.numbers import finite_or_none

from . import tpe_kernels
from .base import (
    CandidateCollector,
    RefinerContext,
    RefinerError,
    RefinerResult,
    clean_or_none,
    own_trials,
    params_key,
    shared_trials,
)

log = logging.getLogger(__name__)

# Optuna logs every trial at INFO; an iteration replays hundreds of them.
optuna.logging.set_verbosity(optuna.logging.WARNING)

# TPE's log normal CDF, compiled and bit for bit Optuna's (agents/refiners/tpe_kernels.py): about
# half of a proposal's time was this one pure-Python function. A private name of Optuna's, so only
# replaced where it is the function we know; tests/agents/test_refiner_tpe_kernels.py fails if an
# Optuna upgrade moves it.
OPTUNA_LOG_NDTR = getattr(_truncnorm, "_log_ndtr", None)
if OPTUNA_LOG_NDTR is not None and not getattr(OPTUNA_LOG_NDTR, "compiled_for_tpe", False):
    _truncnorm._log_ndtr = tpe_kernels.make_log_ndtr(OPTUNA_LOG_NDTR)

# The bounded replay (see the module docstring): at most this many trials go into the study.
MAX_REPLAYED = 64
BEST_KEPT = 24
RECENT_KEPT = 24
# Of MAX_REPLAYED, at most this many peers' trials; and peer sets proposed as they are, per batch.
SHARED_REPLAYED = 32
SHARED_PROPOSED = 2
# TPE asks per requested candidate before falling back to random valid points.
ATTEMPTS_PER_CANDIDATE = 20
# Random draws per requested candidate in the fallback, before calling the space exhausted.
FALLBACK_DRAWS_PER_CANDIDATE = 200
# Significant digits kept on sampled floats: readable versions, stable duplicates.
FLOAT_DIGITS = 6
_CONSTRAINT = "template_rules"


def search_space(template):
    """Optuna distributions for the searchable params, and the fixed ones (no usable range)."""
    distributions, fixed = {}, []
    for spec in template.params:
        if spec.type == "bool":
            distributions[spec.name] = CategoricalDistribution([True, False])
        elif spec.min is None or spec.max is None or spec.max <= spec.min:
            fixed.append(spec.name)
        elif spec.type == "int":
            low, high = math.ceil(spec.min), math.floor(spec.max)
            if high > low:
                # The templates' integers are bar counts (windows, spans, periods): scale
                # parameters, where 2 -> 4 matters as much as 100 -> 200. A log scale gives each
                # octave the same share of the samples; a uniform one would spend most of them
                # on long windows and almost never try the short ones.
                distributions[spec.name] = IntDistribution(low, high, log=low >= 1 and high >= 10 * low)
            else:
                fixed.append(spec.name)
        else:
            distributions[spec.name] = FloatDistribution(float(spec.min), float(spec.max))
    return distributions, fixed


def bounded_history(entries, limit=MAX_REPLAYED, best=BEST_KEPT, recent=RECENT_KEPT):
    """Indices of ``entries`` [(params, score or None), oldest first] to replay, oldest first:
    all of them up to ``limit``, else the ``best`` best scored, the ``recent`` most recent and an
    even stride over the others."""
    n = len(entries)
    if n <= limit:
        return list(range(n))
    kept = set(heapq.nlargest(best, (i for i in range(n) if entries[i][1] is not None), key=lambda i: entries[i][1]))
    kept.update(range(max(0, n - recent), n))
    rest = [i for i in range(n) if i not in kept]
    room = limit - len(kept)
    if room > 0 and rest:
        kept.update(rest[int(k * len(rest) / room)] for k in range(min(room, len(rest))))
    return sorted(kept)


def _contains(distributions, params):
    for name, dist in distributions.items():
        value = params.get(name)
        if isinstance(dist, CategoricalDistribution):
            if value not in dist.choices:
                return False
        elif not dist.low <= value <= dist.high:
            return False
    return True


def _round_float(value, dist):
    value = float(f"{value:.{FLOAT_DIGITS}g}")
    return min(max(value, dist.low), dist.high)


def _random_point(rng, distributions):
    """A point drawn from the distributions as TPE's start-up phase would (log ints on a log scale)."""
    point = {}
    for name, dist in distributions.items():
        if isinstance(dist, CategoricalDistribution):
            point[name] = dist.choices[int(rng.integers(len(dist.choices)))]
        elif isinstance(dist, IntDistribution):
            if dist.log:
                value = math.exp(rng.uniform(math.log(dist.low - 0.5 if dist.low > 0.5 else dist.low),
                                             math.log(dist.high + 0.5)))
            else:
                value = rng.uniform(dist.low - 0.5, dist.high + 0.5)
            point[name] = int(min(max(round(value), dist.low), dist.high))
        else:
            point[name] = _round_float(rng.uniform(dist.low, dist.high), dist)
    return point


class OptunaRefiner:
    name = "optuna"

    def __init__(self, *, n_startup_trials=10):
        self.n_startup_trials = n_startup_trials

    def _sampler(self, seed):
        # Multivariate TPE models parameter interactions (a fast/slow window pair), which
        # independent TPE cannot; constant_liar makes the n asks of one batch spread out.
        return optuna.samplers.TPESampler(
            seed=seed,
            multivariate=True,
            constant_liar=True,
            n_startup_trials=self.n_startup_trials,
        )

    def propose(self, ctx: RefinerContext) -> RefinerResult:
        template = ctx.template
        distributions, fixed = search_space(template)
        current = clean_or_none(template, ctx.current_params)
        # Params without a searchable range keep the current value (the default if the
        # current set itself no longer validates).
        base = {name: (current or template.defaults())[name] for name in fixed}

        study = optuna.create_study(direction="maximize", sampler=self._sampler(ctx.seed))
        n_seeded, best, worst = self._seed(study, ctx, distributions, current)

        collector = CandidateCollector(template, ctx.current_params, ctx.history, ctx.n_candidates,
                                       ctx.evaluated)
        wanted = max(1, ctx.n_candidates)
        infeasible = duplicates = 0
        best_text = f"{ctx.objective}={best:.4g}" if best is not None else "none yet"
        self._propose_shared(collector, ctx, min(SHARED_PROPOSED, wanted))
        for _ in range(wanted * ATTEMPTS_PER_CANDIDATE):
            if collector.full:
                break
            trial = study.ask(distributions)
            params = dict(base)
            for name, dist in distributions.items():
                value = trial.params[name]
                params[name] = _round_float(value, dist) if isinstance(dist, FloatDistribution) else value
            clean = clean_or_none(template, params)
            if clean is None:
                infeasible += 1
                # Infeasible, not failed: TPE ignores failed trials, so it would keep sampling the
                # region; an infeasible one joins the bad trials whatever its value.
                trial.set_constraint(_CONSTRAINT, 1.0)
                study.tell(trial, worst if worst is not None else 0.0)
                continue
            if collector.why_not(clean):
                duplicates += 1
                study.tell(trial, state=TrialState.FAIL)
                continue
            # Left pending (RUNNING) on purpose: constant_liar then pushes the next asks away.
            k = len(collector.candidates) + 1
            collector.add(
                clean,
                f"TPE sample #{k} after {n_seeded} evaluated trials (best so far: {best_text}); seed {ctx.seed}",
                self.name,
            )
        drawn = self._fill_at_random(collector, ctx, distributions, base, wanted, infeasible, duplicates)

        if not collector.candidates:
            raise RefinerError(
                f"Optuna found no new valid parameter set in {wanted * ATTEMPTS_PER_CANDIDATE} TPE attempts "
                f"({infeasible} broke a constraint, {duplicates} were already evaluated) and {drawn} random "
                "draws: the search space may be exhausted"
            )
        return RefinerResult(candidates=collector.candidates, rejected=[], refiner=self.name)

    def _propose_shared(self, collector, ctx, limit):
        """The best peers' sets not evaluated here yet, as they are (the caller gives them best first)."""
        for tried in shared_trials(ctx.history):
            if len(collector.candidates) >= limit or collector.full:
                return
            clean = clean_or_none(ctx.template, tried.params)
            if clean is None or collector.why_not(clean):
                continue
            collector.add(clean, f"warm start: peer {tried.from_agent.name}'s set (its selection score "
                                 f"{tried.score:.4g} on its own data)", self.name)

    def _fill_at_random(self, collector, ctx, distributions, base, wanted, infeasible, duplicates):
        """The bounded fallback: random valid, new points for the slots TPE left; returns the draws."""
        if collector.full:
            return 0
        rng = np.random.default_rng(ctx.seed)
        draws = 0
        while not collector.full and draws < wanted * FALLBACK_DRAWS_PER_CANDIDATE:
            draws += 1
            clean = clean_or_none(ctx.template, {**base, **_random_point(rng, distributions)})
            if clean is None or collector.why_not(clean):
                continue
            collector.add(
                clean,
                f"random valid sample #{len(collector.candidates) + 1}: TPE's samples broke the template's rules "
                f"({infeasible}) or repeated evaluated sets ({duplicates}); seed {ctx.seed}",
                self.name,
            )
        log.info("optuna refiner: %d of %d candidates; %d TPE samples infeasible, %d duplicates, %d random draws",
                 len(collector.candidates), ctx.n_candidates, infeasible, duplicates, draws)
        return draws

    def _seed(self, study, ctx, distributions, current):
        """Replay the bounded history into the study; returns (rationale's trial count, best, worst)."""
        shared = [(tried.params, finite_or_none(tried.score)) for tried in shared_trials(ctx.history)]
        shared = shared[:SHARED_REPLAYED]
        entries = [(tried.params, finite_or_none(tried.score)) for tried in own_trials(ctx.history)]
        limit = max(MAX_REPLAYED - len(shared), MAX_REPLAYED // 2)
        kept = limit * BEST_KEPT // MAX_REPLAYED  # best and recent scaled with the room left
        chosen = bounded_history(entries, limit=limit, best=kept, recent=kept)
        replayed = [entries[i] for i in chosen] + [(current, finite_or_none(ctx.selection_score))]
        trials, keys, scores = [], set(), []
        # Own trials first: a set both tried is replayed once, with the agent's own score.
        for index, (params, score) in enumerate(replayed + shared):
            clean = clean_or_none(ctx.template, params) if params is not None else None
            # Sets that no longer fit the schema (bounds changed since) cannot be replayed; the
            # current version's selection score counts even if the caller left it out.
            if clean is None or not _contains(distributions, clean):
                continue
            is_shared = index >= len(replayed)
            if (params is current or is_shared) and params_key(clean) in keys:
                continue
            keys.add(params_key(clean))
            point = {name: clean[name] for name in distributions}
            if score is None:
                trials.append(create_trial(params=point, distributions=distributions, state=TrialState.FAIL))
            else:
                trials.append(create_trial(params=point, distributions=distributions, value=score))
                if not is_shared:  # "best so far" in a rationale is the agent's own
                    scores.append(score)
        study.add_trials(trials)
        count = str(len(trials)) if len(chosen) == len(entries) else f"{len(entries)} ({len(trials)} replayed)"
        if shared:
            count += f" and {len(shared)} of peers'"
        return count, (max(scores) if scores else None), (min(scores) if scores else None)
