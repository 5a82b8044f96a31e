"""One learning iteration on SPX with 8 Optuna candidates, on SQLite: where the time goes.

Prints, per iteration, the wall time, the time spent inside backtests (strategy signal +
engine, 18 backtests: current version and 8 candidates on two windows each), inside the
refiner (Optuna TPE sampling), and the rest (database, bookkeeping). Target: the time beyond
the backtests is at most equal to them; the figures show which part is over it.

Run from the project root: .venv/bin/python bench/iteration.py [iterations]
"""

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["LAB_VAR_DIR"] = tempfile.mkdtemp(prefix="lab-bench-")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

from config.bootstrap import bootstrap  # noqa: E402

bootstrap()
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from agents.market.samples import get_sample_dataset, load_sample_dataset  # noqa: E402
from agents.refiners.optuna_refiner import OptunaRefiner  # noqa: E402
from agents.services import evaluation, learning  # noqa: E402
from agents.services.agents import agent_create  # noqa: E402


def main(iterations=10):
    call_command("migrate", verbosity=0)
    spx = load_sample_dataset(get_sample_dataset("SPX")).instrument
    user = get_user_model().objects.create_user("bench")
    agent = agent_create(owner=user, name="bench", instrument=spx, strategy_template="sma_crossover",
                         refiner="optuna", candidates_per_iteration=8)

    spent = {"backtest": 0.0, "count": 0, "refiner": 0.0}
    real_propose = OptunaRefiner.propose

    def timed_propose(self, ctx):
        started = time.perf_counter()
        try:
            return real_propose(self, ctx)
        finally:
            spent["refiner"] += time.perf_counter() - started

    OptunaRefiner.propose = timed_propose
    real_evaluate = evaluation.evaluate_params

    def timed_evaluate(*args, **kwargs):
        started = time.perf_counter()
        try:
            return real_evaluate(*args, **kwargs)
        finally:
            spent["backtest"] += time.perf_counter() - started
            spent["count"] += 2  # train + validation

    learning.evaluate_params = timed_evaluate
    print(f"SPX: {spx.bars.count()} bars; agent with 8 candidates per iteration, Optuna TPE, SQLite (WAL)")
    print(f"{'iter':>4} {'wall ms':>8} {'backtests':>10} {'#bt':>4} {'refiner':>8} {'db+rest':>8} "
          f"{'beyond/bt':>10} {'db+rest/bt':>11} {'queries':>8}")
    ratios, db_ratios = [], []
    for _ in range(iterations):
        spent.update(backtest=0.0, count=0, refiner=0.0)
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            iteration, _ = learning.iteration_run_now(agent, trigger="manual")
            wall = time.perf_counter() - started
        assert iteration.status == "succeeded", iteration.error
        beyond = wall - spent["backtest"]
        rest = beyond - spent["refiner"]
        ratios.append(beyond / spent["backtest"])
        db_ratios.append(rest / spent["backtest"])
        print(f"{iteration.number:>4} {wall * 1e3:>8.1f} {spent['backtest'] * 1e3:>10.1f} {spent['count']:>4} "
              f"{spent['refiner'] * 1e3:>8.1f} {rest * 1e3:>8.1f} {ratios[-1]:>10.2f} {db_ratios[-1]:>11.2f} "
              f"{len(queries):>8}")
    ratios.sort()
    db_ratios.sort()
    print(f"times in ms. median (time beyond backtests)/backtests: {ratios[len(ratios) // 2]:.2f} (target <= 1.00)")
    print(f"median (database + bookkeeping, refiner excluded)/backtests: {db_ratios[len(db_ratios) // 2]:.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
