"""What the apps add to /health and /metrics, registered from their AppConfig.ready().

`config` imports no app: a health part or a gauge belongs to the app that owns what it measures,
and that app registers it here. health.py and metrics.py read the registry on every report or
scrape, so the parts appear in the order the apps registered them.

- health check: `read(now=..., check_alerts=...)` returns {part: {"ok": bool, ...}} for the
  parts it declared; each part counts toward "healthy". It runs only when the database answers.
- health fact: `read()` returns an informational value (not counted toward "healthy").
- gauges: `collect()` yields prometheus metric families read from the database at scrape time.
Registering under a name already used replaces it (ready() may run more than once in tests).
"""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class HealthCheck:
    parts: tuple
    read: Callable


_health_checks: dict[str, HealthCheck] = {}
_health_facts: dict[str, Callable] = {}
_gauges: dict[str, Callable] = {}


def register_health_check(name, parts, read):
    _health_checks[name] = HealthCheck(tuple(parts), read)


def register_health_fact(name, read):
    _health_facts[name] = read


def register_gauges(name, collect):
    _gauges[name] = collect


def health_checks():
    return list(_health_checks.values())


def health_facts():
    return dict(_health_facts)


def gauges():
    return list(_gauges.values())
