"""Alerts per agent per hour on the demo (issue 12, section 5): run `make run`, count what it raises.

The script runs the demo exactly as `make run` does (migrate, load_sample_data, replay_setup,
ensure_operator, seed_demo, then `python -m config.launcher`, with LAB_REPLAY_ENABLED=1), but:

- in a fresh temporary LAB_VAR_DIR, so the SQLite database, the filesystem broker, the metrics
  folder and the operator password are its own and nothing of another run is counted;
- on a free port (LAB_PORT), never 8000, which another engineer may be using;
- with DATABASE_URL and CELERY_BROKER_URL unset, so it always measures the embedded defaults.

It lets the lab run for --minutes, printing progress every minute, stops the launcher with
SIGINT to its process group (SIGKILL after a timeout), then reads the SQLite file with sqlite3
and prints, per demo agent: learning iterations, alert rows and occurrences by type and
severity, graduations and demotions; and lab-wide alerts per agent per hour over the measured
wall time. It prints; it never asserts.

Run: .venv/bin/python bench/demo_alerts.py [--root PATH] [--minutes 10] [--json PATH]
--root selects the project tree to run (default: this checkout), so the same script measures
another checkout, e.g. a worktree of the code before a change.
"""

import argparse
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

SETUP = ["migrate --no-input", "load_sample_data", "replay_setup", "ensure_operator", "seed_demo"]
STOP_TIMEOUT = 90  # the launcher itself gives its children 50 s before killing them
UP_MARKER = "Agent Learning Lab is up"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parent.parent),
                        help="project tree to run (default: the checkout holding this script)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--json", default="", help="write the figures to this file")
    return parser.parse_args()


def free_port():
    # Ask the kernel for a free port; 8000 is someone else's demo, so never take it.
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port != 8000:
            return port


def lab_env(var_dir, port):
    env = dict(os.environ)
    # The embedded defaults only: a DATABASE_URL or broker from the shell would measure
    # (and pollute) a shared server instead of this run's own SQLite and broker folder.
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "PROMETHEUS_MULTIPROC_DIR", "PYTEST_XDIST_WORKER"):
        env.pop(name, None)
    # PROMETHEUS_MULTIPROC_DIR is dropped above because the launcher empties that folder at start:
    # inherited, it would wipe another run's metrics. Unset, it lives under our var dir.
    env.update({
        "LAB_VAR_DIR": str(var_dir),
        "LAB_PORT": str(port),
        "LAB_HOST": "127.0.0.1",
        "LAB_REPLAY_ENABLED": "1",
        "LAB_CONSOLE_BASE_URL": f"http://127.0.0.1:{port}",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def python_of(root):
    # `make run` uses the tree's own .venv; fall back to ours when the tree has none.
    venv = Path(root) / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def connect(db_path):
    # The lab runs SQLite in WAL mode, so reading while it writes is safe; a timeout rides out
    # a checkpoint. We only ever SELECT.
    conn = sqlite3.connect(db_path, timeout=30)
    conn.row_factory = sqlite3.Row
    return conn


def progress_counts(db_path):
    try:
        with connect(db_path) as conn:
            done = conn.execute("SELECT COUNT(*) FROM agents_learningiteration "
                                "WHERE status IN ('succeeded', 'failed')").fetchone()[0]
            rows, occ = conn.execute("SELECT COUNT(*), COALESCE(SUM(occurrence_count), 0) FROM alerts_agentalert "
                                     "WHERE agent_id IS NOT NULL").fetchone()
        return done, rows, occ
    except sqlite3.Error as exc:  # a busy database must not end the measurement
        return f"? ({exc})", "?", "?"


def tail(path, lines=40):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop_launcher(proc, log_path):
    """SIGINT to the whole group, as Ctrl-C on `make run` would; SIGKILL after STOP_TIMEOUT."""
    started = time.monotonic()
    if proc.poll() is not None:
        return f"launcher had already exited with {proc.returncode}"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
        note = f"launcher stopped on SIGINT in {time.monotonic() - started:.1f} s (exit {proc.returncode})"
    except subprocess.TimeoutExpired:
        note = f"launcher did NOT stop within {STOP_TIMEOUT} s of SIGINT; SIGKILL sent to its group"
    # Anything of the group still alive (a straggling worker child) would keep writing the DB.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
        note += "; stragglers in the group were killed"
    except ProcessLookupError:
        pass
    proc.wait()
    if "did not stop in time" in tail(log_path, 200):
        note += "; the launcher reported a child that did not stop in time (see the log)"
    return note


def read_figures(db_path):
    with connect(db_path) as conn:
        agents = {r["id"]: {"name": r["name"], "status": r["status"]}
                  for r in conn.execute("SELECT id, name, status FROM agents_tradingagent ORDER BY name")}
        for agent in agents.values():
            agent.update(iterations=Counter(), alerts=defaultdict(lambda: [0, 0]), events=Counter())
        for r in conn.execute("SELECT agent_id, status, COUNT(*) n FROM agents_learningiteration "
                              "GROUP BY agent_id, status"):
            agents[r["agent_id"]]["iterations"][r["status"]] = r["n"]
        system = defaultdict(lambda: [0, 0])
        for r in conn.execute("SELECT agent_id, alert_type, severity, COUNT(*) n, SUM(occurrence_count) occ "
                              "FROM alerts_agentalert GROUP BY agent_id, alert_type, severity"):
            bucket = agents[r["agent_id"]]["alerts"] if r["agent_id"] in agents else system
            bucket[f"{r['alert_type']}/{r['severity']}"] = [r["n"], r["occ"]]
        for r in conn.execute("SELECT agent_id, kind, COUNT(*) n FROM graduation_graduationevent "
                              "GROUP BY agent_id, kind"):
            agents[r["agent_id"]]["events"][r["kind"]] = r["n"]
    for agent in agents.values():
        agent["alerts"] = dict(agent["alerts"])
    return list(agents.values()), dict(system)


def sums(alerts, want=lambda key: True):
    rows = sum(v[0] for k, v in alerts.items() if want(k))
    occ = sum(v[1] for k, v in alerts.items() if want(k))
    return rows, occ


def is_pd(key):
    return key.startswith("PERFORMANCE_DEGRADATION/")


def is_critical(key):
    return key.endswith("/CRITICAL")


def report(agents, system, hours):
    head = (f"{'agent':<28} {'status':<15} {'iter ok':>7} {'failed':>6} {'alerts':>6} {'occ':>5} "
            f"{'PD':>4} {'PDocc':>5} {'CRIT':>4} {'CRocc':>5} {'grad':>4} {'demo':>4}")
    print(head)
    print("-" * len(head))
    for a in agents:
        rows, occ = sums(a["alerts"])
        pd_rows, pd_occ = sums(a["alerts"], is_pd)
        cr_rows, cr_occ = sums(a["alerts"], is_critical)
        print(f"{a['name'][:28]:<28} {a['status'][:15]:<15} {a['iterations']['succeeded']:>7} "
              f"{a['iterations']['failed']:>6} {rows:>6} {occ:>5} {pd_rows:>4} {pd_occ:>5} {cr_rows:>4} "
              f"{cr_occ:>5} {a['events']['graduate']:>4} {a['events']['demote']:>4}")
    print("\nby alert type / severity: rows (occurrences)")
    for a in agents:
        parts = ", ".join(f"{k} {v[0]} ({v[1]})" for k, v in sorted(a["alerts"].items())) or "none"
        print(f"  {a['name'][:28]:<28} {parts}")
    if system:
        parts = ", ".join(f"{k} {v[0]} ({v[1]})" for k, v in sorted(system.items()))
        print(f"  {'(lab-wide, no agent)':<28} {parts}   [not in the rates below]")

    everything = defaultdict(lambda: [0, 0])
    for a in agents:
        for k, v in a["alerts"].items():
            everything[k][0] += v[0]
            everything[k][1] += v[1]
    n = len(agents)
    # Per agent per hour over the wall time the lab ran (setup excluded), so runs of different
    # lengths, or with a different number of demo agents, compare directly.
    rate = (lambda x: x / n / hours) if n and hours > 0 else (lambda x: float("nan"))
    totals = {
        "all": sums(everything),
        "PERFORMANCE_DEGRADATION": sums(everything, is_pd),
        "CRITICAL": sums(everything, is_critical),
    }
    iterations = sum(a["iterations"]["succeeded"] + a["iterations"]["failed"] for a in agents)
    print(f"\nlab-wide over {hours * 60:.1f} min of wall time, {n} demo agents, {iterations} finished iterations")
    print(f"{'alerts per agent per hour':<36} {'rows':>8} {'occurrences':>12}")
    rates = {}
    for label, (rows, occ) in totals.items():
        rates[label] = {"rows": rows, "occurrences": occ,
                        "rows_per_agent_hour": rate(rows), "occurrences_per_agent_hour": rate(occ)}
        print(f"  {label:<34} {rate(rows):>8.2f} {rate(occ):>12.2f}   (totals: {rows} rows, {occ} occurrences)")
    if iterations:
        rows, occ = totals["all"]
        print(f"  {'per 100 finished iterations':<34} {100 * rows / iterations:>8.2f} {100 * occ / iterations:>12.2f}")
    return rates


def main():
    args = parse_args()
    root = Path(args.root).resolve()
    var_dir = Path(tempfile.mkdtemp(prefix="lab-demo-alerts-"))
    port = free_port()
    env = lab_env(var_dir, port)
    py = python_of(root)
    log_path = var_dir / "demo.log"
    db_path = var_dir / "lab.sqlite3"
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip() or "?"
    print(f"root {root} (HEAD {commit}), python {py}")
    print(f"var dir {var_dir}, port {port}, {args.minutes:g} min, embedded SQLite + filesystem broker")

    with open(log_path, "ab") as log:
        # Setup output (including the operator password) goes to the log, not to the report.
        for step in SETUP:
            t0 = time.monotonic()
            done = subprocess.run([py, "manage.py", *step.split()], cwd=root, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, check=False)
            print(f"setup: {step:<18} exit {done.returncode} in {time.monotonic() - t0:5.1f} s", flush=True)
            if done.returncode:
                print(f"setup failed; the log ends with:\n{tail(log_path)}")
                return 1
        # Its own session: SIGINT to the group reaches the launcher and its three children
        # (the launcher restores SIGINT in them), exactly as Ctrl-C in a terminal would.
        proc = subprocess.Popen([py, "-m", "config.launcher"], cwd=root, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    started = time.monotonic()
    up_at = None
    deadline = started + args.minutes * 60
    next_tick = started + 60
    early_exit = None
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                early_exit = f"the launcher exited by itself after {(time.monotonic() - started) / 60:.1f} min"
                break
            if up_at is None and UP_MARKER in tail(log_path, 400):
                up_at = time.monotonic() - started
                print(f"lab up after {up_at:.1f} s", flush=True)
            if time.monotonic() >= next_tick:
                done, rows, occ = progress_counts(db_path)
                print(f"[{(time.monotonic() - started) / 60:4.1f} min] iterations finished {done}, "
                      f"alerts {rows} rows / {occ} occurrences", flush=True)
                next_tick += 60
            time.sleep(1)
    except KeyboardInterrupt:
        early_exit = "interrupted by the user"
    finally:
        stop_note = stop_launcher(proc, log_path)
        # Up to the launcher's exit: a warm worker shutdown may still finish an iteration and
        # raise alerts, and everything counted must fall inside the measured time.
        wall = time.monotonic() - started
    print(stop_note)
    if early_exit:
        print(f"WARNING: {early_exit}; the log ends with:\n{tail(log_path)}")
    if up_at is None:
        print("WARNING: the launcher never reported the lab up (/health); figures may be near zero")
    # /health answers 503 until beat and a worker are alive: expected at start, not an error.
    errors = [line for line in tail(log_path, 100000).splitlines()
              if "Traceback" in line or (" ERROR " in line and "/health" not in line)]
    print(f"log: {log_path} ({len(errors)} ERROR/Traceback lines besides the start-up /health 503s)")
    for line in errors[:10]:
        print(f"  {line[:200]}")

    agents, system = read_figures(db_path)
    print()
    rates = report(agents, system, wall / 3600)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "root": str(root), "commit": commit, "minutes_requested": args.minutes, "wall_seconds": wall,
            "up_after_seconds": up_at, "stop": stop_note, "early_exit": early_exit, "rates": rates,
            "agents": [{**a, "iterations": dict(a["iterations"]), "events": dict(a["events"])} for a in agents],
            "lab_wide_alerts": system,
        }, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
