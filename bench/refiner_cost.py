"""What an Optuna proposal costs as an agent's history grows: the options side by side (issue 13 §2).

For each option, the time of one proposal of 8 candidates (asks, and tells of what was rejected)
after 50 and after 5,000 evaluated trials, on a 6-parameter space shaped like the templates' (two
log-scaled windows with a fast < slow rule, a float, two stop floats, a bool), scored by a smooth
known objective. Options:

- replay all: a fresh in-memory study replays the whole history each time (before issue 13);
- journal ask/tell: one persisted study per agent (Optuna's JournalStorage on a file), each
  proposal only asks and tells; TPE still reads and models every trial in the study;
- journal random: the same storage with a sampler whose cost is flat because it learns nothing
  (CMA-ES, the flat sampler that learns, needs the `cmaes` package, which the lab does not ship);
- bounded replay: the lab's refiner, which replays a bounded, decimated history
  (agents/refiners/optuna_refiner.py: the best trials in full, the most recent, a stride of the rest).

Run from the project root: .venv/bin/python bench/refiner_cost.py [--small 50] [--large 5000] [--repeats 3]
"""

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import optuna  # noqa: E402
from optuna.storages import JournalStorage  # noqa: E402
from optuna.storages.journal import JournalFileBackend  # noqa: E402
from optuna.trial import TrialState, create_trial  # noqa: E402

from agents.refiners.base import RefinerContext, TriedParams  # noqa: E402
from agents.refiners.optuna_refiner import OptunaRefiner, search_space  # noqa: E402
from agents.strategies.registry import get_template  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.ERROR)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
TEMPLATE = get_template("sma_crossover")
N_CANDIDATES = 8


def score(params):
    return (-abs(np.log(params["fast"] / 12)) - abs(np.log(params["slow"] / 90)) - abs(params["stop_loss"] - 0.05)
            - 0.1 * params["take_profit"] + (0.2 if params["long_only"] else 0.0))


def history(n, seed=3):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        fast, slow = int(np.exp(rng.uniform(0, np.log(200)))), int(np.exp(rng.uniform(np.log(2), np.log(400))))
        if fast < slow:
            params = {"fast": fast, "slow": slow, "long_only": bool(rng.integers(0, 2)),
                      "stop_loss": float(rng.uniform(0, 0.5)), "take_profit": float(rng.uniform(0, 5))}
            out.append(TriedParams(params, float(score(params))))
    return out


def ctx(tried, seed):
    return RefinerContext(template=TEMPLATE, current_params=TEMPLATE.defaults(), fold_metrics=[], selection_score=0.0,
                          objective="sharpe", history=tried, recent_trades=[], n_candidates=N_CANDIDATES, seed=seed)


def bounded_replay(tried, seed):
    started = time.perf_counter()
    OptunaRefiner().propose(ctx(tried, seed))
    return time.perf_counter() - started


def replay_all(tried, seed):
    """The refiner before issue 13: every trial replayed into a fresh study, then asks."""
    distributions, _ = search_space(TEMPLATE)
    started = time.perf_counter()
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(
        seed=seed, multivariate=True, constant_liar=True, n_startup_trials=10))
    study.add_trials([create_trial(params={k: t.params[k] for k in distributions}, distributions=distributions,
                                   value=t.score) for t in tried])
    _ask_until_full(study, distributions)
    return time.perf_counter() - started


def _ask_until_full(study, distributions):
    found = 0
    for _ in range(N_CANDIDATES * 50):
        trial = study.ask(distributions)
        if trial.params["fast"] < trial.params["slow"]:
            found += 1
            if found == N_CANDIDATES:
                return
        else:
            study.tell(trial, state=TrialState.FAIL)


def journal(sampler_name):
    def run(tried, seed):
        distributions, _ = search_space(TEMPLATE)
        path = Path(tempfile.mkdtemp(prefix="refiner-journal-")) / "study.log"
        storage = JournalStorage(JournalFileBackend(str(path)))

        def sampler():
            if sampler_name == "random":
                return optuna.samplers.RandomSampler(seed=seed)
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True, n_startup_trials=10)

        # Building the persisted history is a one-off (it accrues over the agent's life): not timed.
        study = optuna.create_study(study_name="agent", storage=storage, direction="maximize", sampler=sampler())
        study.add_trials([create_trial(params={k: t.params[k] for k in distributions},
                                       distributions=distributions, value=t.score) for t in tried])
        started = time.perf_counter()
        # One iteration in a worker: open the agent's study, ask, tell what was rejected.
        study = optuna.load_study(study_name="agent", storage=JournalStorage(JournalFileBackend(str(path))),
                                  sampler=sampler())
        _ask_until_full(study, distributions)
        elapsed = time.perf_counter() - started
        os.remove(path)
        return elapsed
    return run


OPTIONS = {"replay all": replay_all, "journal ask/tell (TPE)": journal("tpe"),
           "journal ask/tell (random)": journal("random"), "bounded replay (chosen)": bounded_replay}


def measure(option, n, repeats):
    tried = history(n)
    return min(option(tried, seed) for seed in range(repeats))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=50, help="trials in the short history (50)")
    parser.add_argument("--large", type=int, default=5000, help="trials in the long history (5000)")
    parser.add_argument("--repeats", type=int, default=3, help="proposals per point, the fastest kept (3)")
    parser.add_argument("--options", default=",".join(OPTIONS), help="comma-separated subset of the options")
    args = parser.parse_args(argv)
    print(f"one proposal of {N_CANDIDATES} candidates (sma_crossover space), best of {args.repeats}; ms")
    print(f"{'option':<28} {f'{args.small} trials':>12} {f'{args.large} trials':>13} {'ratio':>7}")
    for name in args.options.split(","):
        small, large = measure(OPTIONS[name], args.small, args.repeats), measure(OPTIONS[name], args.large,
                                                                                 args.repeats)
        print(f"{name:<28} {small * 1e3:>12.1f} {large * 1e3:>13.1f} {large / small:>7.2f}", flush=True)
    print("target for the lab's refiner: ask time after 5,000 trials / after 50 trials <= 1.5")


if __name__ == "__main__":
    main()
