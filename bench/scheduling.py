"""Scheduled learning at scale, on SQLite: 10,000 agents, 20 distinct crons.

Prints the time to enable auto-learn on every agent with `auto_learn_enable_bulk` (one call per
cron), the CrontabSchedule rows (must be 20: one per distinct cron and zone) and PeriodicTask
rows (one per agent), then the time and query count of `schedules_reconcile()` on the
consistent set and after drift (rows disabled, re-pointed and deleted by hand, orphans).

Run from the project root: .venv/bin/python bench/scheduling.py [agents]
"""

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["LAB_VAR_DIR"] = tempfile.mkdtemp(prefix="lab-bench-sched-")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

from config.bootstrap import bootstrap  # noqa: E402

bootstrap()
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django_celery_beat.models import CrontabSchedule, PeriodicTask  # noqa: E402

from agents.market.models import Instrument  # noqa: E402
from agents.models import StrategyVersion, TradingAgent, VersionOrigin  # noqa: E402
from agents.services import scheduling  # noqa: E402

CRONS = [
    "0 * * * *", "15 * * * *", "30 * * * *", "45 * * * *", "0 */2 * * *",
    "0 */3 * * *", "0 */4 * * *", "0 */6 * * *", "0 */8 * * *", "0 */12 * * *",
    "0 0 * * *", "0 6 * * *", "0 9 * * 1-5", "30 17 * * 1-5", "0 22 * * *",
    "*/30 * * * *", "*/20 * * * *", "0 3 * * 0", "0 4 1 * *", "0 12 * * mon,wed,fri",
]


def timed(label, fn):
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as ctx:
        result = fn()
    elapsed = time.perf_counter() - started
    print(f"{label:<58} {elapsed:8.3f} s  {len(ctx.captured_queries):6d} queries  -> {result}")
    return result


def make_agents(n):
    user = get_user_model().objects.create_user("bench")
    instrument = Instrument.objects.create(symbol="BENCH", name="Bench", bar_interval="1d", bars_per_year=252)
    TradingAgent.objects.bulk_create(
        [TradingAgent(owner=user, name=f"agent-{i:05d}", instrument=instrument, strategy_template="sma_crossover")
         for i in range(n)],
        batch_size=1000,
    )
    ids = list(TradingAgent.objects.order_by("name").values_list("pk", flat=True))
    StrategyVersion.objects.bulk_create(
        [StrategyVersion(agent_id=pk, number=1, params={"fast": 10, "slow": 50}, origin=VersionOrigin.INITIAL)
         for pk in ids],
        batch_size=1000,
    )
    return ids


def main(n=10_000):
    call_command("migrate", verbosity=0)
    print(f"SQLite {connection.Database.sqlite_version}, DB under {os.environ['LAB_VAR_DIR']}")
    ids = timed(f"create {n} agents + versions (bulk_create)", lambda: len(make_agents(n)))
    ids = list(TradingAgent.objects.order_by("name").values_list("pk", flat=True))

    def enable_all():
        for i, cron in enumerate(CRONS):
            scheduling.auto_learn_enable_bulk(TradingAgent.objects.filter(pk__in=ids[i::len(CRONS)]), cron=cron)
        return TradingAgent.objects.filter(auto_learn_enabled=True).count()

    timed(f"auto_learn_enable_bulk, {len(CRONS)} crons over {n} agents", enable_all)
    crontabs = CrontabSchedule.objects.count()
    tasks = PeriodicTask.objects.filter(name__endswith=":learn").count()
    print(f"CrontabSchedule rows: {crontabs} (expected {len(CRONS)})   PeriodicTask rows: {tasks} (expected {n})")
    assert crontabs == len(CRONS) and tasks == n

    timed("schedules_reconcile(), consistent", scheduling.schedules_reconcile)

    # Drift as an operator (or a crash) could leave it.
    step = max(n // 100, 1)
    PeriodicTask.objects.filter(pk__in=PeriodicTask.objects.order_by("pk").values("pk")[:step]).update(enabled=False)
    other = CrontabSchedule.objects.order_by("pk").first()
    PeriodicTask.objects.filter(
        pk__in=PeriodicTask.objects.exclude(crontab=other).order_by("-pk").values("pk")[:step]
    ).update(crontab=other)
    PeriodicTask.objects.filter(pk__in=PeriodicTask.objects.order_by("pk").values("pk")[step:2 * step]).delete()
    TradingAgent.objects.filter(pk__in=ids[-step:]).delete()  # agents gone, rows orphaned
    timed(f"schedules_reconcile(), ~{step} rows each drifted", scheduling.schedules_reconcile)
    timed("schedules_reconcile(), consistent again", scheduling.schedules_reconcile)

    one = TradingAgent.objects.get(pk=ids[0])
    timed("schedule_set on one agent (sync one row)",
          lambda: scheduling.schedule_set(one, cron="5 4 * * *", timezone="Europe/London", actor=None).pk)
    timed("scheduled_fire on one agent",
          lambda: getattr(scheduling.scheduled_fire(ids[1]), "idempotency_key", None))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
