"""Learning iterations on SPX, 5 folds + sealed window, on SQLite: where the time goes.

Two sections, each with 8 and with 32 SMA-crossover candidates:

1. the amortised cost of one (candidate, fold) evaluation (target positions, engine, fold and
   stitched metrics): every candidate evaluated alone vs all of them in one batch
   (target <= 40 us);
2. whole iterations (Optuna refiner): wall time split into backtests, refiner, statistics
   (PBO, DSR, selection evidence) and the rest (database and bookkeeping), each part counted
   without the parts it calls; "beyond / backtests" = (wall - backtests) / backtests (target <= 1).

``--compare PATH`` first runs this same script on another checkout (e.g. the main branch, for a
before/after in one run) and prints both side by side. Asserts nothing. Each run first does what a
worker process does at start (``config.warmup.warm_up``: the compiled kernels and, where the
checkout has one, its heap policy, ``LAB_HEAP_TOP_PAD_MB``; set it to 0 to measure without).

Run from the project root: .venv/bin/python bench/iteration.py [iterations] [--compare PATH]
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

ARGS = sys.argv[1:]
ROOT = Path(ARGS[ARGS.index("--root") + 1]) if "--root" in ARGS else Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["LAB_VAR_DIR"] = tempfile.mkdtemp(prefix="lab-bench-")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

try:  # checkouts from before the explicit bootstrap step (--compare) set up on import
    from config.bootstrap import bootstrap
except ImportError:
    bootstrap = None
if bootstrap:
    bootstrap()
django.setup()

try:  # ... and before the warm-up registry
    from config.warmup import warm_up
except ImportError:
    warm_up = None
if warm_up:
    warm_up()  # as a worker process does at start: compiled kernels loaded, its heap policy set

import numpy as np  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from agents.evaluation import backtests, trials  # noqa: E402
from agents.evaluation.protocol import split_protocol  # noqa: E402
from agents.market.cache import load_bars  # noqa: E402
from agents.market.samples import get_sample_dataset, load_sample_dataset  # noqa: E402
from agents.refiners.optuna_refiner import OptunaRefiner  # noqa: E402
from agents.services import approval_gate, iteration_evaluation, learning  # noqa: E402
from agents.services.agents import agent_create  # noqa: E402
from agents.strategies.registry import get_template  # noqa: E402

SIZES = (8, 32)
PARTS = ("backtests", "refiner", "statistics")


def sma_candidates(count, seed=11):
    template = get_template("sma_crossover")
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        fast = int(rng.integers(2, 60))
        out.append(template.validate({"fast": fast, "slow": fast + int(rng.integers(5, 150))}))
    return out


def median_seconds(fn, budget=2.0, min_runs=5):
    fn()
    times, start = [], time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < budget:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def per_evaluation(spx):
    """Seconds per (candidate, fold): each candidate alone, and (when the checkout has it) in a batch."""
    bars = load_bars(spx.pk)
    protocol = split_protocol(len(bars), test_fraction=0.2, n_folds=5)
    agent = SimpleNamespace(fee_bps=1.0, slippage_bps=2.0, initial_capital=100_000.0, objective="sharpe")
    template = get_template("sma_crossover")
    out = {}
    for size in SIZES:
        params = sma_candidates(size)
        units = size * len(protocol.folds)
        alone = median_seconds(lambda p=params: [backtests.evaluate_selection(agent, template, x, bars, protocol,
                                                                              252.0) for x in p])
        row = {"alone": alone / units}
        if hasattr(backtests, "evaluate_selections"):
            batch = median_seconds(lambda p=params: backtests.evaluate_selections(agent, template, p, bars,
                                                                                  protocol, 252.0))
            row["batch"] = batch / units
        out[size] = row
    return out


class Clock:
    """Time per part, each call counted without the time of the timed calls inside it."""

    def __init__(self):
        self.spent = defaultdict(float)
        self._stack = []

    def wrap(self, owner, name, part):
        real = getattr(owner, name, None)
        if real is None:
            return

        def timed(*args, **kwargs):
            self._stack.append(0.0)
            started = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                total = time.perf_counter() - started
                self.spent[part] += total - self._stack.pop()
                if self._stack:
                    self._stack[-1] += total

        setattr(owner, name, timed)


def iterations(spx, count):
    clock = Clock()
    for name in ("evaluate_selection", "evaluate_selections", "evaluate_sealed"):
        clock.wrap(iteration_evaluation, name, "backtests")
    clock.wrap(trials, "evaluate_selection", "backtests")  # PBO's history trials not in the cache
    clock.wrap(OptunaRefiner, "propose", "refiner")
    for name in ("search_pbo", "population", "dsr_of", "distinct", "sharpe_stats", "min_track_record_length"):
        clock.wrap(iteration_evaluation, name, "statistics")
    for name in ("selection_evidence", "judge_selection"):
        clock.wrap(approval_gate, name, "statistics")
    user = get_user_model().objects.create_user("bench")
    out = {}
    for size in SIZES:
        agent = agent_create(owner=user, name=f"bench {size}", instrument=spx, strategy_template="sma_crossover",
                             refiner="optuna", candidates_per_iteration=size)
        rows = []
        for _ in range(count):
            clock.spent.clear()
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                iteration, _ = learning.iteration_run_now(agent, trigger="manual")
                wall = time.perf_counter() - started
            assert iteration.status == "succeeded", iteration.error
            row = {part: clock.spent[part] for part in PARTS}
            row.update(wall=wall, db_rest=wall - sum(row.values()), queries=len(queries))
            row["ratio"] = (wall - row["backtests"]) / row["backtests"]
            rows.append(row)
        out[size] = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
    return out


def measure(count):
    call_command("migrate", verbosity=0)
    spx = load_sample_dataset(get_sample_dataset("SPX")).instrument
    return {"bars": spx.bars.count(), "per_evaluation": per_evaluation(spx), "iterations": iterations(spx, count)}


def report(runs):
    names = list(runs)
    print(f"SPX: {runs[names[-1]]['bars']} bars, 5 folds + sealed window (test fraction 0.2), fee 1 bp + "
          "slippage 2 bp on the evaluations; Optuna TPE, SQLite")
    print("\n== Amortised cost per (candidate, fold) evaluation of SMA crossover (target <= 40 us)")
    print(f"{'checkout':<12}{'candidates':>11}{'alone':>12}{'in a batch':>12}{'speed-up':>10}")
    for name in names:
        for size, row in runs[name]["per_evaluation"].items():
            batch = row.get("batch")
            cells = (f"{batch * 1e6:9.1f} us{row['alone'] / batch:9.1f}x" if batch else f"{'-':>12}{'-':>10}")
            print(f"{name:<12}{size:>11}{row['alone'] * 1e6:9.1f} us{cells}")
    print("\n== Iterations: median ms per part (each without the timed parts it calls)")
    print(f"{'checkout':<12}{'candidates':>11}{'wall':>9}{'backtests':>10}{'refiner':>9}{'statistics':>11}"
          f"{'db+rest':>9}{'beyond/bt':>10}{'(beyond-refiner)/bt':>21}{'queries':>8}")
    for name in names:
        for size, row in runs[name]["iterations"].items():
            bt = row["backtests"]
            print(f"{name:<12}{size:>11}{row['wall'] * 1e3:9.1f}{bt * 1e3:10.1f}{row['refiner'] * 1e3:9.1f}"
                  f"{row['statistics'] * 1e3:11.1f}{row['db_rest'] * 1e3:9.1f}{row['ratio']:10.2f}"
                  f"{(row['wall'] - bt - row['refiner']) / bt:21.2f}{row['queries']:>8.0f}")
    print("beyond/bt target <= 1; the refiner column belongs to the refiner work (issue 13 section 2).")


def main():
    count = int(ARGS[0]) if ARGS and ARGS[0].isdigit() else 6
    if "--json" in ARGS:
        print(json.dumps(measure(count)))
        return
    runs = {}
    if "--compare" in ARGS:
        other = ARGS[ARGS.index("--compare") + 1]
        python = Path(other) / ".venv" / "bin" / "python"
        done = subprocess.run([str(python if python.exists() else sys.executable), __file__, str(count), "--json",
                               "--root", other], capture_output=True, text=True, check=True, cwd=other,
                              env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        runs["before"] = {k: ({int(s): v for s, v in val.items()} if isinstance(val, dict) else val)
                          for k, val in json.loads(done.stdout.strip().splitlines()[-1]).items()}
    runs["this" if not runs else "after"] = measure(count)
    report(runs)


if __name__ == "__main__":
    main()
