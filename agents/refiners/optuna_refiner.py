"""Optuna (TPE, ask-and-tell) refiner: the optimiser that needs no LLM.

Each call builds a fresh in-memory study, replays the agent's whole evaluated history
into it (so iteration k continues the search of iterations 1..k-1 instead of restarting),
then asks for new points. The sampler is seeded with `ctx.seed` (seed + iteration number),
so the same context always yields the same candidates.

Cross-parameter rules (fast < slow ...) are not expressible as Optuna distributions: a
sampled point that `template.validate` refuses is told as FAIL (TPE ignores it, and with
`constant_liar` the pending good ones still steer later asks) and we ask again, a bounded
number of times.
"""

import logging
import math

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from agents.evaluation.numbers import finite_or_none

from .base import (
    CandidateCollector,
    RefinerContext,
    RefinerError,
    RefinerResult,
    clean_or_none,
    params_key,
)

log = logging.getLogger(__name__)

# Optuna logs every trial at INFO; an iteration replays hundreds of them.
optuna.logging.set_verbosity(optuna.logging.WARNING)

# How many of the most recent history entries are replayed: TPE's cost grows with the
# number of trials, and old evaluations of a long-lived agent add little.
MAX_HISTORY_TRIALS = 2000
# Asks per requested candidate before giving up on constraints / duplicates.
ATTEMPTS_PER_CANDIDATE = 50
# Significant digits kept on sampled floats: readable versions, stable duplicates.
FLOAT_DIGITS = 6


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
        n_seeded, best = self._seed(study, ctx, distributions, current)

        collector = CandidateCollector(template, ctx.current_params, ctx.history, ctx.n_candidates)
        attempts = max(1, ctx.n_candidates) * ATTEMPTS_PER_CANDIDATE
        infeasible = duplicates = 0
        best_text = f"{ctx.objective}={best:.4g}" if best is not None else "none yet"
        for _ in range(attempts):
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
                study.tell(trial, state=TrialState.FAIL)
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

        if not collector.candidates:
            raise RefinerError(
                f"Optuna found no new valid parameter set in {attempts} attempts "
                f"({infeasible} broke a constraint, {duplicates} were already evaluated): "
                "the search space may be exhausted"
            )
        if not collector.full:
            log.info(
                "optuna refiner: %d of %d candidates after %d attempts (%d infeasible, %d duplicates)",
                len(collector.candidates),
                ctx.n_candidates,
                attempts,
                infeasible,
                duplicates,
            )
        return RefinerResult(candidates=collector.candidates, rejected=[], refiner=self.name)

    def _seed(self, study, ctx, distributions, current):
        """Replay the history into the study; returns (trials added, best score)."""
        entries = [(tried.params, tried.score) for tried in ctx.history[-MAX_HISTORY_TRIALS:]]
        keys = set()
        for params, _ in entries:
            clean = clean_or_none(ctx.template, params)
            if clean is not None:
                keys.add(params_key(clean))
        # The current version's selection score counts even if the caller left it out.
        if current is not None and params_key(current) not in keys:
            entries.append((current, ctx.selection_score))

        trials, best = [], None
        for params, raw_score in entries:
            clean = clean_or_none(ctx.template, params)
            # Sets that no longer fit the schema (bounds changed since) cannot be replayed.
            if clean is None or not _contains(distributions, clean):
                continue
            point = {name: clean[name] for name in distributions}
            score = finite_or_none(raw_score)
            if score is None:
                trials.append(create_trial(params=point, distributions=distributions, state=TrialState.FAIL))
                continue
            trials.append(create_trial(params=point, distributions=distributions, value=score))
            best = score if best is None else max(best, score)
        study.add_trials(trials)
        return len(trials), best
