"""Latency sampling and its tables for bench/api_load.py: HTTP clients against a running server, no Django."""

import random
import statistics
import threading
import time


def measure(base, token, paths, label, *, requests_per_endpoint, threads, phase_seconds):
    """Latency samples (ms) per endpoint: requests_per_endpoint each, from `threads` clients, within phase_seconds."""
    import requests

    names = list(paths)
    plan = [name for _ in range(requests_per_endpoint) for name in names]
    random.Random(3).shuffle(plan)
    samples = {name: [] for name in names}
    errors = []
    lock = threading.Lock()
    cursor = iter(plan)
    deadline = time.monotonic() + phase_seconds

    def client():
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        for _ in range(3):  # warm the connection and the worker
            session.get(base + paths["agents list"](), timeout=30)
        while time.monotonic() < deadline:
            with lock:
                name = next(cursor, None)
                path = paths[name]() if name else None
            if name is None:
                return
            started = time.perf_counter()
            response = session.get(base + path, timeout=30)
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                if response.status_code != 200:
                    errors.append((path, response.status_code))
                samples[name].append(elapsed)

    clients = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    if errors:
        print(f"{label}: {len(errors)} non-200 answers, e.g. {errors[:3]}")
    return samples


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def table(label, samples, threads):
    print(f"\n{label}: latency in ms ({threads} client threads, gunicorn -w 2)")
    print(f"  {'endpoint':<18} {'n':>5} {'p50':>8} {'p95':>8} {'mean':>8}")
    for name, values in samples.items():
        if values:
            print(f"  {name:<18} {len(values):>5} {percentile(values, 50):>8.1f} {percentile(values, 95):>8.1f} "
                  f"{statistics.fmean(values):>8.1f}")
