"""Typed readers of the environment, and the lab's folders derived from it.

Every reader fails with ImproperlyConfigured naming the variable, the rule and the value, so a
bad value stops the start instead of half-working. Reading has no side effect.

This module sits beside the settings package, not in it: `config.bootstrap` must find the var
folder and the secret-key file before any setting can be read, and importing any module of the
settings package would run its `__init__` (all the settings) first.
"""

import math
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name):
    return os.environ.get(name)


def text(name, default=""):
    raw = _raw(name)
    return default if raw is None else raw


def text_list(name, default):
    """Comma-separated values; blanks around and between the commas are dropped."""
    raw = _raw(name)
    if raw is None:
        return list(default)
    return [part.strip() for part in raw.split(",") if part.strip()]


def choice(name, default, choices, fold_case=False):
    value = text(name, default)
    if fold_case:
        value = value.upper()
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ImproperlyConfigured(f"{name} must be one of {allowed}, got {value!r}")
    return value


def boolean(name, default):
    raw = _raw(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false, 1/0, yes/no, on/off), got {raw!r}")


def _bounds(low, high):
    if low is not None and high is not None:
        return f"from {low} to {high}"
    return f"at least {low}" if low is not None else f"at most {high}"


def integer(name, default, low=None, high=None):
    """An integer within [low, high] (None: unbounded on that side)."""
    raw = _raw(name)
    rule = "an integer" if low is None and high is None else f"an integer {_bounds(low, high)}"
    try:
        value = default if raw is None else int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be {rule}, got {raw!r}") from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise ImproperlyConfigured(f"{name} must be {rule}, got {value}")
    return value


def positive_int(name, default):
    return integer(name, default, low=1)


def integer_list(name, default, low=None):
    values = []
    for part in text_list(name, [str(v) for v in default]):
        try:
            value = int(part)
        except ValueError:
            raise ImproperlyConfigured(f"{name} must be comma-separated integers, got {part!r}") from None
        if low is not None and value < low:
            raise ImproperlyConfigured(f"{name} must be comma-separated integers of at least {low}, got {value}")
        values.append(value)
    return values


def number(name, default, low, high):
    """A finite float within [low, high]: every float setting has both bounds."""
    raw = _raw(name)
    rule = f"a number {_bounds(low, high)}"
    try:
        value = default if raw is None else float(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be {rule}, got {raw!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ImproperlyConfigured(f"{name} must be {rule}, got {value}")
    return value


# --- The lab's folders (created by config.bootstrap, never here) ----------------------------
def var_dir():
    """LAB_VAR_DIR: databases, broker messages, metrics files, the generated secret key."""
    return Path(text("LAB_VAR_DIR", "") or BASE_DIR / "var")


def secret_key_path(folder):
    return Path(folder) / "secret_key"


def filesystem_broker_folders(folder):
    """The embedded broker's folders (messages are files, no server needed)."""
    broker = Path(folder) / "broker"
    return {name: broker / name for name in ("queue", "processed", "control")}


def metrics_multiprocess():
    return boolean("LAB_METRICS_MULTIPROCESS", True)


def metrics_dir():
    """Where every process writes its metric files (prometheus_client reads PROMETHEUS_MULTIPROC_DIR)."""
    return Path(text("PROMETHEUS_MULTIPROC_DIR", "") or var_dir() / "prometheus")


def secret_key(folder):
    """DJANGO_SECRET_KEY_FILE, else DJANGO_SECRET_KEY, else the key bootstrap generated under var/."""
    key_file = text("DJANGO_SECRET_KEY_FILE")
    if key_file:
        try:
            return Path(key_file).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"DJANGO_SECRET_KEY_FILE: cannot read {key_file} ({exc})") from None
    key = text("DJANGO_SECRET_KEY")
    if key:
        return key
    path = secret_key_path(folder)
    if not path.exists():
        raise ImproperlyConfigured(
            f"no secret key: set DJANGO_SECRET_KEY or DJANGO_SECRET_KEY_FILE, or start through manage.py, "
            f"config.wsgi/asgi or the Celery app, whose bootstrap step generates {path}"
        )
    return path.read_text().strip()
