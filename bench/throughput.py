"""Lab throughput: many agents in continuous learning on real Celery workers (issue 13 §4).

Per stack, in a child process with its own database, broker and var dir:

- PostgreSQL (a database of its own, dropped first) + Redis (one db number, flushed first), with
  one worker process, then two;
- SQLite + the filesystem broker, with one worker process.

N agents (200) on the bundled SPX, GOOG and IXIC daily bars, the five templates in turn, Optuna,
auto-approval on, continuous learning on with no gap and no convergence stop. Workers are started
as the tests start them (tests/processes.py: `celery -A config worker`, here `-Q iterations,default
-c 1`, one pool process each). The loop is the lab's own: this process calls `continuous_tick`
twice a second, as the beat would once a minute, with a clock that moves one minute per tick (an
agent gets at most one continuous iteration per minute, by its idempotency key; a real minute per
tick would measure the beat's period, not the workers). It prints, per configuration:
iterations per minute per worker process, p50/p95 iteration latency (the iteration's own
duration_ms), peak RSS per worker (VmHWM of each pool process), and the scaling of two workers
over one (target >= 1.7).

Then, without workers, database queries per iteration (Django's query capture around the
service a worker runs, `learning.iteration_run`), at two agent counts and two history lengths
(the long one padded with stored trials), which must be the same; and the refiner's ask time
after 5,000 trials / after 50 (bench/refiner_cost.py; target <= 1.5).

The CPU is shared: figures are only comparable within one run. Nothing is asserted.

Run from the project root: .venv/bin/python bench/throughput.py [--agents 200] [--seconds 60]
    [--warmup 15] [--stacks postgres,sqlite] [--long-history 2000] [--database-url postgres://...]
    [--redis-url redis://127.0.0.1:6379/9]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

TEMPLATES = ("sma_crossover", "ema_macd", "donchian_breakout", "rsi_reversion", "bollinger_reversion")
SYMBOLS = ("SPX", "GOOG", "IXIC")
PG_DEFAULT = "postgres://postgres@127.0.0.1:5432/lab_bench_throughput"
REDIS_DEFAULT = "redis://127.0.0.1:6379/9"


# --- the parent: one child per stack -----------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=200, help="agents in continuous learning (200)")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds per configuration (60)")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds run before measuring (15)")
    parser.add_argument("--stacks", default="postgres,sqlite", help="comma-separated: postgres, sqlite")
    parser.add_argument("--workers", default="1,2", help="PostgreSQL runs, in order: worker processes (1,2)")
    parser.add_argument("--long-history", type=int, default=2000, help="stored trials of the long history (2000)")
    parser.add_argument("--database-url", default=PG_DEFAULT, help=f"PostgreSQL database to (re)create ({PG_DEFAULT})")
    parser.add_argument("--redis-url", default=REDIS_DEFAULT, help=f"Redis db to flush and use ({REDIS_DEFAULT})")
    parser.add_argument("--stack", help=argparse.SUPPRESS)  # internal: run one stack in this process
    args = parser.parse_args(argv)
    if args.stack:
        return run_stack(args)
    results = []
    for stack in [s.strip() for s in args.stacks.split(",") if s.strip()]:
        results.append(_child(stack, args))
    _print_summary(results, _ask_ratio(), args)
    return 0


def _child(stack, args):
    var = tempfile.mkdtemp(prefix=f"lab-throughput-{stack}-")
    env = dict(os.environ, LAB_VAR_DIR=var, DJANGO_SETTINGS_MODULE="config.settings", PYTHONUNBUFFERED="1",
               LAB_MAX_CONCURRENT_ITERATIONS="4")
    env.pop("PYTEST_XDIST_WORKER", None)
    if stack == "postgres":
        env.update(DATABASE_URL=args.database_url, CELERY_BROKER_URL=args.redis_url)
    else:
        env.pop("DATABASE_URL", None)
        env["CELERY_BROKER_URL"] = "filesystem://"
    out = Path(var) / "result.json"
    cmd = [sys.executable, __file__, "--stack", stack, "--agents", str(args.agents), "--seconds", str(args.seconds),
           "--warmup", str(args.warmup), "--workers", args.workers, "--long-history", str(args.long_history),
           "--database-url", args.database_url, "--redis-url", args.redis_url]
    print(f"== {stack}: var dir {var}", flush=True)
    subprocess.run(cmd, env=env, check=True, cwd=ROOT)
    return json.loads(out.read_text())


def _print_summary(results, ask, args):
    print(f"\n== summary: {args.agents} agents, {args.seconds:.0f} s measured after {args.warmup:.0f} s warm-up")
    print(f"{'stack':<22} {'workers':>7} {'it/min/worker':>14} {'it/min total':>13} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'peak RSS MB':>12}")
    for result in results:
        for run in result["runs"]:
            print(f"{result['stack']:<22} {run['workers']:>7} {run['per_worker_per_min']:>14.1f} "
                  f"{run['per_min']:>13.1f} {run['p50_ms']:>8.0f} {run['p95_ms']:>8.0f} "
                  f"{max(run['rss_mb'] or [0]):>12.0f}")
        runs = {run["workers"]: run for run in result["runs"]}
        if 1 in runs and 2 in runs and runs[1]["per_min"]:
            print(f"{'':<22} two workers / one: {runs[2]['per_min'] / runs[1]['per_min']:.2f} (target >= 1.7)")
    print("\ndatabase queries per iteration, min-max of 3 (target: the same in every row of a stack)")
    print(f"{'stack':<22} {'agents':>7} {'trials':>7} {'queries':>8} {'ms (median of 3)':>17}")
    for result in results:
        for row in result["queries"]:
            print(f"{result['stack']:<22} {row['agents']:>7} {row['trials']:>7} {row['queries']:>8} {row['ms']:>17.0f}")
    print(f"\nrefiner: one proposal of 8 candidates after 50 trials {ask['small_ms']:.1f} ms, after 5,000 "
              f"{ask['large_ms']:.1f} ms: ratio {ask['large_ms'] / ask['small_ms']:.2f} (target <= 1.5)")


# --- the child: one stack ----------------------------------------------------------------------


def run_stack(args):
    stack = args.stack
    if stack == "postgres":
        _fresh_postgres(args.database_url)
        _flush_redis(args.redis_url)
    import django

    from config.bootstrap import bootstrap

    bootstrap()  # the var folder and the secret key, as manage.py and the Celery app do at start
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    _agents, queries = _agents_and_query_counts(args.agents, args.long_history)
    result = {"stack": "PostgreSQL + Redis" if stack == "postgres" else "SQLite + filesystem", "runs": [],
              "queries": queries}
    for workers in ([int(w) for w in args.workers.split(",")] if stack == "postgres" else (1,)):
        result["runs"].append(_measure(workers, args))
    from django.conf import settings

    (Path(settings.VAR_DIR) / "result.json").write_text(json.dumps(result))
    return 0


def _fresh_postgres(url):
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _flush_redis(url):
    import redis

    redis.Redis.from_url(url).flushdb()


def _make_agents(start, stop):
    from django.contrib.auth import get_user_model

    from agents.market.models import Instrument
    from agents.market.samples import get_sample_dataset, load_sample_dataset
    from agents.services.agents import agent_create
    from agents.services.approval import auto_approve_enable

    instruments = [Instrument.objects.filter(symbol=symbol).first()
                   or load_sample_dataset(get_sample_dataset(symbol)).instrument for symbol in SYMBOLS]
    user, _ = get_user_model().objects.get_or_create(username="throughput")
    agents = []
    for i in range(start, stop):
        agent = agent_create(
            owner=user, name=f"agent-{i:03d}", instrument=instruments[i % len(instruments)],
            strategy_template=TEMPLATES[i % len(TEMPLATES)], refiner="optuna", candidates_per_iteration=8,
            max_iterations_per_day=1000, min_iteration_gap_minutes=0, convergence_threshold=0.0, random_seed=i,
        )
        auto_approve_enable(agent, actor=user)
        agents.append(agent)
    return agents


def _agents_and_query_counts(n, long_history):
    """Make the n agents; on the way, the queries of one iteration (run as a worker runs it) at
    two agent counts (n / 10 and n) and two history lengths (a few iterations, and padded)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from agents.models import IterationTrigger, Refinement, TradingAgent
    from agents.services import dispatch, learning

    def one(agent):
        iteration, _ = dispatch.iteration_queue(agent, trigger=IterationTrigger.MANUAL)
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            learning.iteration_run(iteration.pk)
            elapsed = time.perf_counter() - started
        iteration.refresh_from_db()
        assert iteration.status == "succeeded", iteration.error
        return len(captured), elapsed * 1e3

    agents = _make_agents(0, max(10, n // 10))
    short, long = agents[0], agents[5]  # both sma_crossover on SPX
    for agent in (short, long):
        for _ in range(3):  # past the first iterations' special cases (no history, first version)
            one(agent)
    _pad_history(long, long_history)
    rows = []
    for count in (len(agents), n):
        agents += _make_agents(len(agents), count)
        for agent in (short, long):
            agent.refresh_from_db()
            one(agent)  # the same warm state (bar cache, connection) in every row
            # An iteration that applies a version or raises an alert writes more rows: min and max of 3.
            runs = [one(agent) for _ in range(3)]
            counts, ms = sorted(q for q, _ in runs), sorted(m for _, m in runs)[1]  # ms: the median of 3
            trials = Refinement.objects.filter(agent=agent).count()
            rows.append({"agents": TradingAgent.objects.count(), "trials": trials,
                         "queries": f"{counts[0]}-{counts[-1]}", "ms": ms})
    return agents, rows


def _pad_history(agent, n):
    """n stored trials for ``agent``: valid parameter sets with scores and Sharpe ratios."""
    import numpy as np

    from agents.models import Refinement, RefinementStatus
    from agents.strategies.registry import get_template

    template = get_template(agent.strategy_template)
    iteration = agent.iterations.latest("number")
    rng = np.random.default_rng(1)
    rows = []
    while len(rows) < n:
        fast, slow = int(rng.integers(1, 201)), int(rng.integers(2, 401))
        if fast >= slow:
            continue
        params = template.validate({"fast": fast, "slow": slow, "stop_loss": round(float(rng.uniform(0, 0.2)), 6)})
        rows.append(Refinement(iteration=iteration, agent=agent, proposed_params=params, source="optuna",
                               score=float(rng.normal(0, 0.5)), selection_sharpe=float(rng.normal(0, 0.03)),
                               status=RefinementStatus.REJECTED))
    Refinement.objects.bulk_create(rows, batch_size=500)


def _measure(workers, args):
    """Run the continuous loop with ``workers`` worker processes; the figures of the measured window."""
    from django.conf import settings
    from django.db.models import Q
    from django.utils import timezone

    from agents.models import LearningIteration, TradingAgent
    from agents.services.continuous import continuous_start, continuous_stop, continuous_tick
    from tests.processes import celery_process, purge_filesystem_broker

    purge_filesystem_broker()
    agents = list(TradingAgent.objects.all())
    for agent in agents:
        continuous_start(agent, actor=None)
    logs = Path(settings.VAR_DIR)
    clock = timezone.now()
    with _workers(celery_process, workers, logs) as procs:
        started = time.monotonic()
        window_start = None
        while time.monotonic() - started < args.warmup + args.seconds:
            if window_start is None and time.monotonic() - started >= args.warmup:
                window_start = timezone.now()
            clock += _minute()
            continuous_tick(now=max(clock, timezone.now()))
            time.sleep(0.5)
        window_end = timezone.now()
        rss = [_peak_rss_mb(proc.pid) for proc in procs]
        for agent in agents:
            continuous_stop(agent, actor=None, reason="bench over")
    done = LearningIteration.objects.filter(Q(finished_at__gte=window_start) & Q(finished_at__lte=window_end),
                                            status="succeeded")
    durations = sorted(done.values_list("duration_ms", flat=True))
    failed = LearningIteration.objects.filter(finished_at__gte=window_start, status="failed").count()
    minutes = (window_end - window_start).total_seconds() / 60
    run = {"workers": workers, "iterations": len(durations), "failed": failed,
           "per_min": len(durations) / minutes, "per_worker_per_min": len(durations) / minutes / workers,
           "p50_ms": _quantile(durations, 0.5), "p95_ms": _quantile(durations, 0.95), "rss_mb": rss}
    print(f"   {workers} worker(s): {run['iterations']} iterations in {minutes:.2f} min ({failed} failed), "
          f"{run['per_worker_per_min']:.1f}/min/worker, p50 {run['p50_ms']:.0f} ms, p95 {run['p95_ms']:.0f} ms, "
          f"peak RSS {', '.join(f'{mb:.0f}' for mb in rss)} MB", flush=True)
    _drain()
    return run


class _workers:
    """Start ``n`` celery workers (one pool process each) and stop them at the end."""

    def __init__(self, celery_process, n, logs):
        self._contexts = [celery_process("worker", logs / f"worker{i}.log", "-Q", "iterations,default", "-c", "1",
                                         "-n", f"bench{i}@%h", "--without-gossip", "--without-mingle")
                          for i in range(n)]

    def __enter__(self):
        return [context.__enter__() for context in self._contexts]

    def __exit__(self, *exc):
        for context in reversed(self._contexts):
            context.__exit__(None, None, None)


def _drain():
    """Queued iterations left by the run are failed, so the next run starts from a clean queue."""
    from agents.models import IterationStatus, LearningIteration

    LearningIteration.objects.filter(status__in=[IterationStatus.QUEUED, IterationStatus.RUNNING]).update(
        status=IterationStatus.FAILED, error="bench: left over")


def _minute():
    import datetime as dt

    return dt.timedelta(minutes=1)


def _peak_rss_mb(pid):
    """The largest VmHWM among the worker's process and its pool processes, in MB."""
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    peak = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except FileNotFoundError:
            continue
    return peak / 1024


def _quantile(values, q):
    if not values:
        return float("nan")
    return float(values[min(len(values) - 1, int(q * len(values)))])


def _ask_ratio():
    import refiner_cost

    small = refiner_cost.measure(refiner_cost.bounded_replay, 50, 3)
    large = refiner_cost.measure(refiner_cost.bounded_replay, 5000, 3)
    return {"small_ms": small * 1e3, "large_ms": large * 1e3}


if __name__ == "__main__":
    sys.exit(main())
