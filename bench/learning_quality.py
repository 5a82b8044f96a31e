"""How honest is the lab's learning? Hold-out, null and planted-edge measurements (issue 12, section 8).

Three sets of series; the lab only ever gets the oldest 80% of each, the newest 20% is the
bench's hold-out (see bench/_quality_series.py for the series and the planted edge):

- bundled: SPX, IXIC, GOOG, EURUSD, one agent per strategy template on each;
- null: zero-drift random walks, where no strategy has an edge (anything "learned" is noise);
- planted: AR(1) series with a modest edge each template can exploit (|phi| 0.15);
- strong: the same with a strong edge (|phi| 0.3): the two together read as a power curve.

Each agent is made by `agent_create` with the lab's defaults (Optuna, default params, default
approval thresholds and graduation criteria) plus auto-approval switched on, runs N manual
iterations, and is then measured: eligibility for paper trading, the hold-out Sharpe of its
final version minus that of its initial version, the lab's headline score minus the final
version's hold-out Sharpe (how far the lab overstates itself), alerts raised, time per iteration.

Each worker process has its own var dir and SQLite database, so the figures never depend on
another engineer's data or on PostgreSQL being up. The bench prints; it never asserts.

Run from the project root: .venv/bin/python bench/learning_quality.py [--iterations 20] [--walks 30]
    [--planted 20] [--phi 0.15] [--phi-strong 0.3] [--seed 7] [--sets bundled,null,planted,strong]
    [--jobs 2] [--json rows.json]
"""

import argparse
import io
import json
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _quality_series import (  # noqa: E402
    LAB_FRACTION,
    SYNTH_BARS,
    AgentPlan,
    lab_part,
    parse_full,
    plan_agents,
    synthetic_csv,
)

SETS = ("bundled", "null", "planted", "strong")
TEMPLATES = ("sma_crossover", "ema_macd", "donchian_breakout", "rsi_reversion", "bollinger_reversion")
_child = {}  # per worker process: user, headline function, series already imported


# --- worker process ------------------------------------------------------------------------------
def _init_child(root, log_level):
    # Set before django.setup(): settings read the environment once, at import.
    os.environ["LAB_VAR_DIR"] = tempfile.mkdtemp(prefix="worker-", dir=root)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["LAB_LOG_LEVEL"] = log_level
    for name in ("DATABASE_URL", "CELERY_BROKER_URL"):  # own SQLite and broker folder, never shared
        os.environ.pop(name, None)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")  # --jobs processes already use the cores
    import django

    from config.bootstrap import bootstrap

    bootstrap()
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    _child["user"] = get_user_model().objects.create_user("bench-quality")
    try:
        from agents.evaluation.headline import headline_score
    except ImportError:  # the code before the rebuild: see _headline
        headline_score = None
    _child["headline"] = headline_score
    _child["series"] = {}


def _series(plan):
    """(instrument, full bars, cut) for the plan's series, imported into this worker's DB once."""
    if plan.series in _child["series"]:
        return _child["series"][plan.series]
    from agents.market.importer import import_bars_csv
    from agents.market.samples import get_sample_dataset

    if plan.set == "bundled":
        dataset = get_sample_dataset(plan.symbol)
        text = dataset.path.read_text(encoding="utf-8-sig")
        interval, bars_per_year, name = dataset.interval, dataset.bars_per_year, f"{dataset.name} (oldest 80%)"
    else:
        text = synthetic_csv(SYNTH_BARS, plan.phi, plan.series_seed)
        interval, bars_per_year, name = "1d", None, f"synthetic, AR(1) phi {plan.phi:+.2f}"
    lab_text, cut = lab_part(text)
    result = import_bars_csv(io.StringIO(lab_text), symbol=plan.series.upper(), name=name,
                             interval=interval, bars_per_year=bars_per_year)
    entry = (result.instrument, parse_full(text), cut)
    _child["series"][plan.series] = entry
    return entry


def _headline(agent):
    """The out-of-sample score the lab reports for the agent's current version."""
    if _child["headline"] is not None:
        return _child["headline"](agent)
    # Before the rebuild the lab showed, for a version made by a refinement, the validation score
    # stored with it, and otherwise the score of the last iteration that evaluated it.
    from agents.models import IterationStatus, LearningIteration, VersionOrigin

    version = agent.current_version
    if version.origin == VersionOrigin.REFINEMENT:
        return (version.metrics.get("validation") or {}).get(agent.objective)
    return (LearningIteration.objects.filter(agent=agent, version=version, status=IterationStatus.SUCCEEDED)
            .order_by("-number").values_list("score", flat=True).first())


def run_agent(job):
    plan, iterations = AgentPlan(**job[0]), job[1]
    try:
        return _run_agent(plan, iterations)
    except Exception as exc:  # one broken agent must not lose the run: report it and go on
        return {**asdict(plan), "error": f"{type(exc).__name__}: {exc}"}


def _run_agent(plan, iterations):
    from _quality_series import holdout_score

    from agents.models import IterationStatus
    from agents.services.agents import agent_create
    from agents.services.approval import auto_approve_enable
    from agents.services.learning import iteration_run_now
    from alerts.models import AgentAlert
    from graduation.eligibility import eligibility

    instrument, full, cut = _series(plan)
    user = _child["user"]
    agent = agent_create(owner=user, name=f"{plan.set}-{plan.series}-{plan.template}", instrument=instrument,
                         strategy_template=plan.template, refiner="optuna", random_seed=plan.agent_seed)
    auto_approve_enable(agent, actor=user)
    initial_params = dict(agent.current_version.params)
    seconds, statuses, first_score = [], Counter(), None
    for _ in range(iterations):
        started = time.perf_counter()
        iteration, _created = iteration_run_now(agent, trigger="manual")
        seconds.append(time.perf_counter() - started)
        statuses[iteration.status] += 1
        if first_score is None and iteration.status == IterationStatus.SUCCEEDED:
            first_score = iteration.score  # what the lab reported for the initial version
        agent.refresh_from_db()
    agent = type(agent).objects.select_related("current_version", "instrument").get(pk=agent.pk)
    final_params = dict(agent.current_version.params)
    bars_per_year = instrument.bars_per_year
    hold_initial = holdout_score(agent, initial_params, full, cut, bars_per_year)
    hold_final = holdout_score(agent, final_params, full, cut, bars_per_year)
    headline = _headline(agent)
    verdict = eligibility(agent)
    alerts = {}
    for alert_type, occurrences in AgentAlert.objects.filter(agent=agent).values_list(
            "alert_type", "occurrence_count"):
        rows, total = alerts.get(alert_type, (0, 0))
        alerts[alert_type] = (rows + 1, total + occurrences)
    return {
        **asdict(plan), "error": None, "bars_lab": cut, "bars_holdout": len(full) - cut,
        "iterations": dict(statuses), "eligible": bool(verdict["eligible"]),
        "failed_criteria": list(verdict.get("failed") or []),
        "version": agent.current_version.number, "changed": final_params != initial_params,
        "initial_params": initial_params, "final_params": final_params,
        "holdout_initial": hold_initial, "holdout_final": hold_final, "holdout_change": hold_final - hold_initial,
        "headline": None if headline is None else float(headline),
        "bias": None if headline is None else float(headline) - hold_final,
        "bias_initial": None if first_score is None else float(first_score) - hold_initial,
        "headline_source": "agents.evaluation.headline" if _child["headline"] else "fallback (pre-rebuild)",
        "alerts": alerts, "sec_per_iteration": statistics.fmean(seconds) if seconds else None,
    }


# --- report ----------------------------------------------------------------------------------------
def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _median_se(values, resamples=2000):
    """Bootstrap standard error of the median (fixed seed): how far the median itself is from noise."""
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return None
    rng = random.Random(12345)
    medians = [statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples)]
    return statistics.stdev(medians)


def _f(value, fmt="{:+.2f}"):
    return "n/a" if value is None else fmt.format(value)


def _pct(part, whole):
    return "n/a" if not whole else f"{part / whole:.0%} ({part}/{whole})"


def summarise(rows):
    ok = [r for r in rows if not r["error"]]
    changed = [r for r in ok if r["changed"]]
    worse = [r for r in changed if r["holdout_change"] < 0]
    return {
        "agents": len(ok), "errors": len(rows) - len(ok),
        "eligible": sum(r["eligible"] for r in ok),
        "changed": len(changed), "worse": len(worse),
        "median_change": _median([r["holdout_change"] for r in ok]),
        "median_change_changed": _median([r["holdout_change"] for r in changed]),
        "median_bias": _median([r["bias"] for r in ok]),
        "median_bias_se": _median_se([r["bias"] for r in ok]),
        "median_bias_initial": _median([r["bias_initial"] for r in ok]),
        "skipped_headline": sum(r["headline"] is None for r in ok),
        "mean_hold_initial": statistics.fmean([r["holdout_initial"] for r in ok]) if ok else None,
        "mean_hold_final": statistics.fmean([r["holdout_final"] for r in ok]) if ok else None,
        "sec_per_iteration": statistics.fmean([r["sec_per_iteration"] for r in ok if r["sec_per_iteration"]])
        if ok else None,
        "failed_iterations": sum(r["iterations"].get("failed", 0) for r in ok),
    }


def print_report(rows, sets):
    by_set = {name: summarise([r for r in rows if r["set"] == name]) for name in sets}
    print("\nPer set (hold-out = the newest 20% of each series, never shown to the lab; Sharpe)")
    head = (f"{'set':8} {'agents':>6} {'eligible':>13} {'changed':>13} {'med Δhold':>9} {'med Δ|chg':>9} "
            f"{'worse|changed':>14} {'med bias':>8} {'bias v1':>7} {'hold v1→final (mean)':>21} {'s/iter':>6}")
    print(head)
    print("-" * len(head))
    for name, s in by_set.items():
        print(f"{name:8} {s['agents']:>6} {_pct(s['eligible'], s['agents']):>13} "
              f"{_pct(s['changed'], s['agents']):>13} {_f(s['median_change']):>9} "
              f"{_f(s['median_change_changed']):>9} {_pct(s['worse'], s['changed']):>14} "
              f"{_f(s['median_bias']):>8} {_f(s['median_bias_initial']):>7} "
              f"{_f(s['mean_hold_initial']):>10} → {_f(s['mean_hold_final']):<8} "
              f"{_f(s['sec_per_iteration'], '{:.2f}'):>6}")
    print("med Δhold: median over all agents of hold-out(final) - hold-out(initial); med Δ|chg: the same among "
          "agents whose params changed;\nmed bias: median of headline(final) - hold-out(final); bias v1: iteration "
          "#1's score (the initial version) - hold-out(initial).")
    for name, s in by_set.items():
        notes = []
        if s["skipped_headline"]:
            notes.append(f"{s['skipped_headline']} agent(s) skipped in the bias: no headline score")
        if s["errors"]:
            notes.append(f"{s['errors']} agent(s) failed to run (see their lines above)")
        if s["failed_iterations"]:
            notes.append(f"{s['failed_iterations']} iteration(s) failed")
        if notes:
            print(f"  {name}: " + "; ".join(notes))
    print("\nAlerts per agent over the run (rows / occurrences, mean per agent)")
    for name in sets:
        ok = [r for r in rows if r["set"] == name and not r["error"]]
        counts = Counter()
        for r in ok:
            for alert_type, (n, occ) in r["alerts"].items():
                counts[(alert_type, "rows")] += n
                counts[(alert_type, "occ")] += occ
        types = sorted({t for t, _ in counts})
        shown = ", ".join(f"{t} {counts[(t, 'rows')] / len(ok):.2f} / {counts[(t, 'occ')] / len(ok):.2f}"
                          for t in types) or "none"
        print(f"  {name:8} {shown}")
    print_targets(by_set)
    return by_set


def print_targets(by_set):
    def share(s, key):
        return None if not s or not s["agents"] else s[key] / s["agents"]

    checks = []
    null, bundled, planted = by_set.get("null"), by_set.get("bundled"), by_set.get("planted")
    if null:
        checks.append(("null data: agents eligible", "≤ 5%", share(null, "eligible"), lambda v: v <= 0.05, "%"))
    if bundled:
        worse = bundled["worse"] / bundled["changed"] if bundled["changed"] else None
        checks.append(("bundled data: hold-out worse, among agents whose version changed", "≤ 20%",
                       worse, lambda v: v <= 0.20, "%"))
        checks.append(("bundled data: median hold-out change", "≥ 0", bundled["median_change"],
                       lambda v: v >= 0, "x"))
    for label, s in (("planted edge", planted), ("strong planted edge", by_set.get("strong"))):
        if not s:
            continue
        checks.append((f"{label}: agents eligible", "≥ 50%", share(s, "eligible"), lambda v: v >= 0.5, "%"))
        checks.append((f"{label}: median hold-out change", "> 0", s["median_change"], lambda v: v > 0, "x"))
    for name, s in by_set.items():
        se = "" if s["median_bias_se"] is None else f", se {s['median_bias_se']:.2f}"
        checks.append((f"median headline-score bias ({name}{se})", "within ±0.25 Sharpe", s["median_bias"],
                       lambda v: abs(v) <= 0.25, "x"))
    print("\nTargets (issue 12)")
    print(f"| {'measure':66} | {'target':19} | {'measured':>9} | result |")
    print(f"|{'-' * 68}|{'-' * 21}|{'-' * 11}|--------|")
    for name, target, value, passes, kind in checks:
        if value is None:
            shown, verdict = "n/a", ("PASS" if "worse" in name else "FAIL")  # 0 changed: none got worse
        else:
            shown = f"{value:.0%}" if kind == "%" else f"{value:+.2f}"
            verdict = "PASS" if passes(value) else "FAIL"
        print(f"| {name:66} | {target:19} | {shown:>9} | {verdict:6} |")


def _progress_line(done, total, row):
    head = f"[{done:>3}/{total}] {row['set']:8} {row['series']:10} {row['template']:20}"
    if row["error"]:
        return f"{head} ERROR {row['error']}"
    alerts = sum(n for n, _ in row["alerts"].values())
    return (f"{head} v{row['version']:<3} eligible={'yes' if row['eligible'] else 'no ':3} "
            f"hold-out {row['holdout_initial']:+.2f}→{row['holdout_final']:+.2f} "
            f"(Δ{row['holdout_change']:+.2f}) headline {_f(row['headline'])} bias {_f(row['bias'])} "
            f"alerts {alerts} {row['sec_per_iteration']:.2f}s/it")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20, help="learning iterations per agent (20)")
    parser.add_argument("--walks", type=int, default=30, help="zero-drift random walks, one agent each (30)")
    parser.add_argument("--planted", type=int, default=20, help="planted-edge series, one agent each (20)")
    parser.add_argument("--phi", type=float, default=0.15, help="|AR(1) coefficient| of the planted edge (0.15)")
    parser.add_argument("--phi-strong", type=float, default=0.3,
                        help="|AR(1) coefficient| of the strong planted edge, set 'strong' (0.3)")
    parser.add_argument("--seed", type=int, default=7, help="base seed of the synthetic series and agents (7)")
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated subset of the sets")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes, each with its own SQLite DB (2)")
    parser.add_argument("--json", type=Path, help="write the raw per-agent rows to this file")
    parser.add_argument("--log-level", default="ERROR", help="the lab's log level in the workers (ERROR)")
    args = parser.parse_args(argv)
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = sorted(set(sets) - set(SETS))
    if unknown:
        parser.error(f"--sets: unknown set(s) {', '.join(unknown)}; known: {', '.join(SETS)}")
    plans = plan_agents(sets, TEMPLATES, walks=args.walks, planted=args.planted, seed=args.seed, phi=args.phi,
                        phi_strong=args.phi_strong)
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                                capture_output=True, text=True, check=False).stdout.strip() or "?"
    except OSError:
        commit = "?"
    print(f"learning quality bench: code {commit} at {ROOT}")
    print(f"sets {','.join(sets)}: {len(plans)} agents x {args.iterations} iterations; walks {args.walks}, "
          f"planted {args.planted} (|phi| {args.phi}; strong {args.phi_strong}), seed {args.seed}, "
          f"jobs {args.jobs}; the lab gets the oldest {LAB_FRACTION:.0%} of each series")
    root = tempfile.mkdtemp(prefix="lab-bench-quality-")
    started = time.perf_counter()
    rows = []
    try:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: Django set up per process
        with context.Pool(args.jobs, initializer=_init_child, initargs=(root, args.log_level)) as pool:
            jobs = [(asdict(p), args.iterations) for p in plans]
            for row in pool.imap_unordered(run_agent, jobs):
                rows.append(row)
                print(_progress_line(len(rows), len(plans), row), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    elapsed = time.perf_counter() - started
    order = {(p.set, p.series, p.template): i for i, p in enumerate(plans)}
    rows.sort(key=lambda r: order[(r["set"], r["series"], r["template"])])
    if rows and rows[0].get("headline_source"):
        print(f"headline score from: {rows[0]['headline_source']}")
    summary = print_report(rows, sets)
    print(f"\nwall time {elapsed:.0f} s for {len(plans)} agents x {args.iterations} iterations "
          f"({args.jobs} processes)")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "code": commit,
                                         "summary": summary, "rows": rows}, indent=1, default=str))
        print(f"rows written to {args.json}")


if __name__ == "__main__":
    main()
