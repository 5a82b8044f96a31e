"""API latency on PostgreSQL with 1,000 agents and 100,000 iterations, idle and under learning load.

1. (Re)creates the bench database (its name must contain "bench"), migrates it and fills it with
   bulk inserts: 1,000 agents of one owner on the bundled SPX data, 100 iterations each (100,000),
   4 refinements on each agent's 5 latest iterations (20,000) and 5 open alerts per agent (5,000).
2. Counts the SQL queries of each measured request in-process for page sizes 10 and 100: they must
   not grow with the page (no N+1).
3. Starts gunicorn (2 workers, 127.0.0.1 only) and measures p50/p95 of the agents list, an agent's
   detail, an agent's iterations and refinements, and the alerts list, from 4 client threads.
4. Starts two Celery workers (`-c 1` each, Redis broker; under `nice -n 10` by default, as a host
   running both web and workers should: --worker-nice 0 to compare), turns continuous learning on for 100
   agents (no gap, a high daily cap) and ticks the loop every second in this process (the beat ticks
   once a minute), then measures the same requests again while iterations run. Redis database 13
   by default (--broker-url), apart from the test suites'.
5. Prints both tables, the p95 ratio (target: under load <= 1.5 x idle) and the iterations run,
   then stops everything it started. About two minutes; requests go to 127.0.0.1 only.

The processes it starts and the latency sampling live in bench/_api_load_processes.py and
bench/_api_load_latency.py.

Run from the project root, with PostgreSQL and Redis up:
    .venv/bin/python bench/api_load.py [--database-url postgres://postgres@127.0.0.1:5432/lab_bench]
"""

import argparse
import datetime as dt
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

from _api_load_latency import measure, percentile, table
from _api_load_processes import Processes, deprioritise_session, free_port, wait_for_web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/lab_bench"
# A Redis database of its own: the bench purges its queues (the test suites use /5 and /11).
DEFAULT_BROKER = "redis://127.0.0.1:6379/13"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--broker-url", default=DEFAULT_BROKER)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--iterations-per-agent", type=int, default=100)
    parser.add_argument("--learning-agents", type=int, default=100)
    parser.add_argument("--requests", type=int, default=300, help="per endpoint and phase")
    parser.add_argument("--phase-seconds", type=float, default=30.0, help="upper bound of each phase")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--worker-nice", type=int, default=10,
                        help="run the workers under `nice -n N` (0: same priority as the web)")
    parser.add_argument("--worker-cpus", default="",
                        help="pin the workers to these CPUs with taskset, e.g. 1 (default: not pinned)")
    return parser.parse_args()


ARGS = parse_args()
VAR_DIR = Path(tempfile.mkdtemp(prefix="lab-bench-api-"))
ENV = {
    "DATABASE_URL": ARGS.database_url,
    "CELERY_BROKER_URL": ARGS.broker_url,
    "LAB_VAR_DIR": str(VAR_DIR),
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
    # The bench measures latency, not the throttles.
    "LAB_THROTTLE_USER": "1000000/min",
    "LAB_THROTTLE_START_WORK": "1000000/min",
    "LAB_LOG_LEVEL": "WARNING",
    "LAB_MAX_CONCURRENT_ITERATIONS": "4",
}
os.environ.update(ENV)
for name in ("PROMETHEUS_MULTIPROC_DIR", "DJANGO_DEBUG"):
    os.environ.pop(name, None)


def recreate_database(url):
    import psycopg

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        sys.exit(f"refusing to recreate {name!r}: the bench database's name must contain 'bench'")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


recreate_database(ARGS.database_url)

import django  # noqa: E402

from config.bootstrap import bootstrap  # noqa: E402

bootstrap()
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.db.models import F  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from agents.market.samples import get_sample_dataset, load_sample_dataset  # noqa: E402
from agents.models import (  # noqa: E402
    IterationStatus,
    IterationTrigger,
    LearningIteration,
    Refinement,
    StrategyVersion,
    TradingAgent,
    VersionOrigin,
)
from agents.services import continuous  # noqa: E402
from agents.strategies.registry import get_template  # noqa: E402
from alerts.models import AgentAlert, AlertType, Severity  # noqa: E402

TEMPLATE = "sma_crossover"
PROCESSES = Processes(ROOT, ENV)  # every process this script started
LOG_PATH = VAR_DIR / "processes.log"


# --- data -------------------------------------------------------------------------------------
def metrics(rng):
    return {"sharpe": rng.uniform(-1, 2), "total_return": rng.uniform(-0.2, 0.4), "win_rate": rng.uniform(0.3, 0.7),
            "num_trades": float(rng.randint(3, 60)), "max_drawdown": rng.uniform(0.02, 0.3), "psr": rng.random()}


def seed_data():
    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    spx = load_sample_dataset(get_sample_dataset("SPX")).instrument
    user = get_user_model().objects.create_user("bench", password=None)
    token = Token.objects.create(user=user).key
    defaults = get_template(TEMPLATE).defaults()
    rng = random.Random(7)
    agents = [
        TradingAgent(id=uuid.UUID(int=rng.getrandbits(128), version=4), owner=user, name=f"bench-{i:04d}",
                     instrument=spx, strategy_template=TEMPLATE, refiner="optuna", candidates_per_iteration=4)
        for i in range(ARGS.agents)
    ]
    TradingAgent.objects.bulk_create(agents, batch_size=1000)
    versions = StrategyVersion.objects.bulk_create(
        [StrategyVersion(agent=a, number=1, params=defaults, origin=VersionOrigin.INITIAL, created_by=user)
         for a in agents], batch_size=1000)
    for agent, version in zip(agents, versions, strict=True):
        agent.current_version = version
    TradingAgent.objects.bulk_update(agents, ["current_version"], batch_size=1000)

    now = timezone.now()
    per_agent = ARGS.iterations_per_agent
    batch = []
    for agent, version in zip(agents, versions, strict=True):
        for number in range(1, per_agent + 1):
            # Finished in the past (hours apart), so today's cap and cooldown start from zero.
            finished = now - dt.timedelta(days=2, hours=per_agent - number)
            batch.append(LearningIteration(
                agent=agent, number=number, trigger=IterationTrigger.CONTINUOUS, status=IterationStatus.SUCCEEDED,
                version=version, train_metrics=metrics(rng), validation_metrics=metrics(rng),
                score=rng.uniform(-1, 2), best_candidate_score=rng.uniform(-1, 2), improvement=rng.uniform(-0.1, 0.1),
                started_at=finished - dt.timedelta(seconds=5), finished_at=finished, duration_ms=5000,
                refiner_used="optuna",
            ))
        if len(batch) >= 20_000:
            LearningIteration.objects.bulk_create(batch, batch_size=5000)
            batch = []
    LearningIteration.objects.bulk_create(batch, batch_size=5000)
    # queued_at is auto_now_add: move it back to just before each start.
    LearningIteration.objects.update(queued_at=F("started_at") - dt.timedelta(seconds=1))

    latest = LearningIteration.objects.filter(number__gt=per_agent - 5).only("id", "agent_id")
    Refinement.objects.bulk_create(
        [Refinement(iteration_id=it.id, agent_id=it.agent_id, proposed_params=defaults, source="optuna",
                    train_metrics=metrics(rng), validation_metrics=metrics(rng), score=rng.uniform(-1, 2),
                    status="rejected", decision_reason="bench")
         for it in latest for _ in range(4)], batch_size=5000)
    kinds = list(AlertType.values)
    AgentAlert.objects.bulk_create(
        [AgentAlert(agent=a, alert_type=kinds[k % len(kinds)], severity=Severity.WARNING, message=f"bench {k}",
                    fingerprint=f"bench-{k}") for a in agents for k in range(5)], batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"seeded in {time.perf_counter() - started:.1f}s: {TradingAgent.objects.count()} agents, "
          f"{LearningIteration.objects.count()} iterations, {Refinement.objects.count()} refinements, "
          f"{AgentAlert.objects.count()} alerts, {spx.bars.count()} SPX bars")
    return user, token, [str(a.pk) for a in agents]


# --- what is measured ---------------------------------------------------------------------------
def endpoints(agent_ids):
    pick = random.Random(11)

    def some():
        return pick.choice(agent_ids)

    return {
        "agents list": lambda: "/api/learning-agents/",
        "agent detail": lambda: f"/api/learning-agents/{some()}/",
        "iterations list": lambda: f"/api/learning-agents/{some()}/iterations/",
        "refinements list": lambda: f"/api/learning-agents/{some()}/refinements/",
        "alerts list": lambda: "/api/learning-agents/alerts/",
    }


def query_counts(user, agent_ids):
    client = Client()
    client.force_login(user)
    agent = agent_ids[0]
    paths = {
        "agents list": "/api/learning-agents/",
        "agent detail": f"/api/learning-agents/{agent}/",
        "iterations list": f"/api/learning-agents/{agent}/iterations/",
        "refinements list": f"/api/learning-agents/{agent}/refinements/",
        "versions list": f"/api/learning-agents/{agent}/versions/",
        "activity list": f"/api/learning-agents/{agent}/activity/",
        "alerts list": "/api/learning-agents/alerts/",
        "agent alerts list": f"/api/learning-agents/{agent}/alerts/",
    }
    rows = []
    for name, path in paths.items():
        counts = []
        for size in (10, 100):
            with CaptureQueriesContext(connection) as queries:
                response = client.get(path, {"page_size": size})
            assert response.status_code == 200, (path, response.status_code)
            body = response.json()
            items = len(body["results"]) if isinstance(body, dict) and "results" in body else 1
            counts.append((len(queries), items))
        rows.append((name, counts))
    print("\nSQL queries per request (in-process), page_size=10 vs 100:")
    print(f"  {'endpoint':<18} {'q@10':>5} {'rows':>5} {'q@100':>6} {'rows':>5}  verdict")
    for name, ((q10, n10), (q100, n100)) in rows:
        verdict = "constant" if q10 == q100 else "GROWS WITH THE PAGE"
        print(f"  {name:<18} {q10:>5} {n10:>5} {q100:>6} {n100:>5}  {verdict}")
    return all(c[0][0] == c[1][0] for _n, c in rows)


# --- the beat, fast -----------------------------------------------------------------------------
class Ticker(threading.Thread):
    """The beat's continuous-learning tick, every second instead of every minute.

    Each tick is told a minute has passed since the last one: the loop's idempotency key is per agent
    and minute, so on the real clock 100 agents could queue only 100 iterations a minute, fewer than
    two workers run. A gap of 0 minutes then makes every idle agent due at each tick.
    """

    def __init__(self):
        super().__init__(daemon=True)
        self.halt = threading.Event()
        self.queued = 0

    def run(self):
        clock = timezone.now()
        try:
            while not self.halt.wait(1.0):
                clock = max(clock + dt.timedelta(minutes=1), timezone.now())
                self.queued += continuous.continuous_tick(now=clock)["queued"]
        finally:
            connections.close_all()


def purge_broker():
    """Drop messages left in the bench's queues by an earlier, interrupted run (its database only)."""
    import redis

    client = redis.Redis.from_url(ARGS.broker_url)
    client.delete("iterations", "default")


def main():
    bench_started = time.monotonic()
    user, token, agent_ids = seed_data()
    constant = query_counts(user, agent_ids)
    connections.close_all()

    import requests

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    phase = {"requests_per_endpoint": ARGS.requests, "threads": ARGS.threads, "phase_seconds": ARGS.phase_seconds}
    logs = open(LOG_PATH, "ab")  # noqa: SIM115 - closed in finally
    ticker = None
    try:
        PROCESSES.start("gunicorn", [str(BIN / "gunicorn"), "-c", "python:config.observability.gunicorn", "config.wsgi",
                           "-w", "2", "-b", f"127.0.0.1:{port}"], logs)
        wait_for_web(requests.Session(), base, token, LOG_PATH)
        paths = endpoints(agent_ids)
        idle = measure(base, token, paths, "idle", **phase)

        purge_broker()
        nice = ["nice", "-n", str(ARGS.worker_nice)] if ARGS.worker_nice else []
        if ARGS.worker_cpus:
            nice = ["taskset", "-c", ARGS.worker_cpus, *nice]
        for n in (1, 2):
            worker = PROCESSES.start(f"worker{n}", [*nice, str(BIN / "celery"), "-A", "config", "worker", "-c", "1",
                                                    "-Q", "iterations,default", "-n", f"bench{n}@%h",
                                                    "--without-mingle", "--without-gossip", "-l", "WARNING"], logs)
            deprioritise_session(worker.pid, ARGS.worker_nice)
        learners = TradingAgent.objects.filter(pk__in=agent_ids[: ARGS.learning_agents])
        learners.update(min_iteration_gap_minutes=0, max_iterations_per_day=100_000, convergence_threshold=0.0)
        for agent in learners:
            continuous.continuous_start(agent, actor=user)
        before = LearningIteration.objects.filter(trigger=IterationTrigger.CONTINUOUS,
                                                  status=IterationStatus.SUCCEEDED).count()
        ticker = Ticker()
        ticker.start()
        # Under load once the workers have finished a first few iterations (they take a moment to boot).
        deadline = time.monotonic() + 60
        while LearningIteration.objects.filter(trigger=IterationTrigger.CONTINUOUS,
                                               status=IterationStatus.SUCCEEDED).count() < before + 4:
            if time.monotonic() > deadline:
                log = LOG_PATH.read_text(errors="replace")[-3000:]
                raise SystemExit(f"no iteration finished within 60 s; the workers' log ends with:\n{log}")
            time.sleep(0.5)
        load_started = time.monotonic()
        loaded = measure(base, token, paths, "under load", **phase)
        load_seconds = time.monotonic() - load_started
        done = LearningIteration.objects.filter(trigger=IterationTrigger.CONTINUOUS,
                                                status=IterationStatus.SUCCEEDED).count() - before
        running = LearningIteration.objects.filter(status=IterationStatus.RUNNING).count()
        failed = LearningIteration.objects.filter(status=IterationStatus.FAILED).count()
    finally:
        if ticker is not None:
            ticker.halt.set()
            ticker.join(timeout=10)
        for agent in TradingAgent.objects.filter(continuous_learning_enabled=True):
            continuous.continuous_stop(agent, actor=user, reason="bench over")
        PROCESSES.stop_all()
        logs.close()

    table("idle", idle, ARGS.threads)
    pinned = f", pinned to CPU {ARGS.worker_cpus}" if ARGS.worker_cpus else ""
    table(f"under load (2 workers, nice {ARGS.worker_nice}{pinned}, learning continuously on {ARGS.learning_agents} "
          f"agents; {os.cpu_count()} CPUs)", loaded, ARGS.threads)
    print("\np95 under load / p95 idle (target <= 1.5):")
    ratios = []
    for name in idle:
        if idle[name] and loaded[name]:
            ratio = percentile(loaded[name], 95) / percentile(idle[name], 95)
            ratios.append(ratio)
            print(f"  {name:<18} {ratio:>5.2f}  {'ok' if ratio <= 1.5 else 'OVER TARGET'}")
    print(f"\niterations finished during the load phase: {done} in {load_seconds:.0f}s "
          f"({done / max(load_seconds, 1e-9):.2f}/s), {running} running at its end, {failed} failed")
    print(f"query counts constant in page size: {'yes' if constant else 'NO'}; "
          f"worst p95 ratio {max(ratios):.2f}; total {time.monotonic() - bench_started:.0f}s")


if __name__ == "__main__":
    try:
        main()
    finally:
        PROCESSES.stop_all()
        shutil.rmtree(VAR_DIR, ignore_errors=True)
