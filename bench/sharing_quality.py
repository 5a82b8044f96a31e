"""What does a warm start from peers buy, and what does it cost in honesty? (issue 16, section 2)

For each case (a series and a seed), on one imported series:

1. PEERS agents (same template, same instrument, one owner, Optuna, auto-approval on, each its own
   seed) learn for PEER_ITERATIONS iterations each;
2. the **target** is the median, over the peers, of the best selection score each peer's search
   found (its best trial): "what the peers reached";
3. two newcomers with the same seed learn for ITERATIONS iterations: one with
   ``share_peer_trials`` on (it warm-starts from the peers), one without (another owner, so it is
   no one's peer and reads no one);
4. measured for each newcomer: (a) iterations until its own best trial reaches the target (its
   selection score, on its own folds; "-" = not within ITERATIONS), (b) the hold-out Sharpe of its
   final version minus its initial one (the newest 20% of the series, never shown to the lab),
   eligibility for paper trading, and the deflated Sharpe ratio of its last iteration with N the
   trials that shaped the choice (own + shared) beside the DSR the same iteration would have had
   counting its own trials only.

Series: ``null`` (zero-drift random walks: nothing to learn, the warm start can only spread noise)
and ``planted`` (AR(1) with |phi| 0.15, sign as the template can exploit; bench/_quality_series.py).
Each worker process has its own var dir and SQLite database. The bench prints; it never asserts.

Run from the project root: .venv/bin/python bench/sharing_quality.py [--seeds 6] [--peers 3]
    [--peer-iterations 8] [--iterations 8] [--phi 0.15] [--sets null,planted]
    [--templates sma_crossover,rsi_reversion,donchian_breakout] [--jobs 1]
"""

import argparse
import io
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _quality_series import MEAN_REVERSION, SYNTH_BARS, lab_part, parse_full, synthetic_csv  # noqa: E402
from learning_quality import _init_child  # noqa: E402  (one worker set-up for both benches)

_state = {}


def _case(job):
    name, phi, template, seed, args = job
    try:
        return _run_case(name, phi, template, seed, args)
    except Exception as exc:  # one broken case must not lose the run
        return {"set": name, "seed": seed, "template": template, "error": f"{type(exc).__name__}: {exc}"}


def _run_case(name, phi, template, seed, args):
    from _quality_series import holdout_score
    from django.contrib.auth import get_user_model

    from agents.evaluation.statistics import deflated_sharpe
    from agents.evaluation.trial_history import agent_history
    from agents.evaluation.trials import population
    from agents.market.importer import import_bars_csv
    from agents.models import IterationStatus
    from agents.services.agents import agent_create
    from agents.services.approval import auto_approve_enable
    from agents.services.learning import iteration_run_now
    from agents.strategies.registry import get_template
    from graduation.eligibility import eligibility

    signed = 0.0 if name == "null" else (-abs(phi) if template in MEAN_REVERSION else abs(phi))
    text = synthetic_csv(SYNTH_BARS, signed, seed * 1000 + (0 if name == "null" else 1))
    lab_text, cut = lab_part(text)
    symbol = f"{name[:4].upper()}{seed}{template[:3].upper()}"
    instrument = import_bars_csv(io.StringIO(lab_text), symbol=symbol, name=symbol, interval="1d",
                                 bars_per_year=None).instrument
    full = parse_full(text)
    users = get_user_model().objects
    owner = users.create_user(f"owner-{symbol}")
    loner = users.create_user(f"loner-{symbol}")
    spec = get_template(template)

    def learn(agent, iterations):
        auto_approve_enable(agent, actor=agent.owner)
        initial = dict(agent.current_version.params)
        best, reached, last = None, None, None
        for number in range(1, iterations + 1):
            iteration, _ = iteration_run_now(agent, trigger="manual")
            agent.refresh_from_db()
            if iteration.status != IterationStatus.SUCCEEDED:
                continue
            last = iteration
            scores = [iteration.selection_score, *iteration.refinements.values_list("score", flat=True)]
            top = max(s for s in scores if s is not None)
            best = top if best is None else max(best, top)
            if reached is None and target is not None and best >= target:
                reached = number
        return initial, best, reached, last

    target = None
    started = time.perf_counter()
    peer_best = []
    for i in range(args.peers):
        peer = agent_create(owner=owner, name=f"peer{i}", instrument=instrument, strategy_template=template,
                            refiner="optuna", random_seed=seed * 100 + i)
        peer_best.append(learn(peer, args.peer_iterations)[1])
    target = statistics.median(b for b in peer_best if b is not None)
    rows = {}
    for label, user, share in (("shared", owner, True), ("alone", loner, False)):
        agent = agent_create(owner=user, name=f"newcomer-{label}", instrument=instrument, strategy_template=template,
                             refiner="optuna", random_seed=seed * 100 + 99, share_peer_trials=share)
        initial, best, reached, last = learn(agent, args.iterations)
        agent = type(agent).objects.select_related("current_version", "instrument").get(pk=agent.pk)
        ev = last.evidence
        _trials, own, _scores = agent_history(agent, spec)
        own_only = population(own, ev["selection_bars"])
        hold_initial = holdout_score(agent, initial, full, cut, instrument.bars_per_year)
        hold_final = holdout_score(agent, agent.current_version.params, full, cut, instrument.bars_per_year)
        rows[label] = {
            "reached": reached, "best": best, "holdout_change": hold_final - hold_initial,
            "eligible": bool(eligibility(agent)["eligible"]), "version": agent.current_version.number,
            "n_trials": ev["n_trials"], "n_own": ev["n_trials_own"], "n_shared": ev["n_trials_shared"],
            "dsr": last.dsr, "dsr_own_only": deflated_sharpe(ev["selection_sharpe"], ev["selection_bars"], ev["skew"],
                                                             ev["kurtosis"], max(own_only.n_trials, 1),
                                                             own_only.variance),
        }
    return {"set": name, "seed": seed, "template": template, "error": None, "target": target,
            "seconds": time.perf_counter() - started, **{f"{k}_{f}": v for k, r in rows.items() for f, v in r.items()}}


def _fmt(value, spec="+.2f"):
    return "-" if value is None else format(value, spec)


def _report(results, args):
    print(f"{'set':8} {'seed':>4} {'template':20} {'target':>7} | {'iters to target':>15} | "
          f"{'hold-out Δ':>13} | {'eligible':>8} | {'N own+shared':>12} | {'DSR':>14} | {'DSR own-only':>12}")
    print(f"{'':43} | {'shared  alone':>15} | {'shared  alone':>13} | {'sh  al':>8} | {'shared alone':>12} | "
          f"{'shared  alone':>14} | {'shared':>12}")
    for r in results:
        if r["error"]:
            print(f"{r['set']:8} {r['seed']:>4} {r['template']:20} ERROR {r['error']}")
            continue
        print(f"{r['set']:8} {r['seed']:>4} {r['template']:20} {r['target']:>+7.3f} | "
              f"{_fmt(r['shared_reached'], 'd'):>7} {_fmt(r['alone_reached'], 'd'):>7} | "
              f"{r['shared_holdout_change']:>+6.2f} {r['alone_holdout_change']:>+6.2f} | "
              f"{'yes' if r['shared_eligible'] else 'no':>3} {'yes' if r['alone_eligible'] else 'no':>4} | "
              f"{r['shared_n_own']:>3}+{r['shared_n_shared']:<3} {r['alone_n_trials']:>4} | "
              f"{r['shared_dsr']:>6.3f} {r['alone_dsr']:>7.3f} | {r['shared_dsr_own_only']:>12.3f}")
    print()
    for name in args.sets:
        rows = [r for r in results if r["set"] == name and not r["error"]]
        if not rows:
            continue
        print(f"{name}: {len(rows)} cases")
        for label in ("shared", "alone"):
            reached = [r[f"{label}_reached"] for r in rows if r[f"{label}_reached"] is not None]
            print(f"  {label:6}: reached the target in {len(reached)}/{len(rows)} "
                  f"(median {_fmt(statistics.median(reached) if reached else None, '.1f')} iterations of those); "
                  f"hold-out Δ median {statistics.median(r[f'{label}_holdout_change'] for r in rows):+.3f}, "
                  f"mean {statistics.fmean(r[f'{label}_holdout_change'] for r in rows):+.3f}; "
                  f"eligible {sum(r[f'{label}_eligible'] for r in rows)}/{len(rows)}; "
                  f"N median {statistics.median(r[f'{label}_n_trials'] for r in rows):.0f}; "
                  f"DSR median {statistics.median(r[f'{label}_dsr'] for r in rows):.3f}")
        print(f"  shared, DSR had it counted its own trials only: median "
              f"{statistics.median(r['shared_dsr_own_only'] for r in rows):.3f} "
              f"(N median {statistics.median(r['shared_n_own'] for r in rows):.0f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--peers", type=int, default=3)
    parser.add_argument("--peer-iterations", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--phi", type=float, default=0.15)
    parser.add_argument("--sets", default="null,planted")
    parser.add_argument("--templates", default="sma_crossover,rsi_reversion,donchian_breakout")
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    args.sets = [s for s in args.sets.split(",") if s]
    templates = [t for t in args.templates.split(",") if t]
    jobs = [(name, args.phi, templates[seed % len(templates)], seed, args)
            for name in args.sets for seed in range(1, args.seeds + 1)]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    print(f"sharing quality bench: code {commit}; {len(jobs)} cases ({', '.join(args.sets)} x {args.seeds} seeds), "
          f"{args.peers} peers x {args.peer_iterations} iterations, newcomers {args.iterations} iterations, "
          f"|phi| {args.phi}, jobs {args.jobs}; the lab gets the oldest 80% of each series")
    root = tempfile.mkdtemp(prefix="sharing-bench-")
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.jobs, initializer=_init_child,
                                                   initargs=(root, os.environ.get("LAB_LOG_LEVEL", "ERROR"))) as pool:
        results = []
        for result in pool.imap(_case, jobs):
            results.append(result)
            print(f"  case {len(results)}/{len(jobs)} {result['set']} seed {result['seed']} done"
                  + (f" ({result['seconds']:.0f}s)" if not result["error"] else f": {result['error']}"), flush=True)
    print()
    _report(results, args)
    print(f"\ntotal {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
