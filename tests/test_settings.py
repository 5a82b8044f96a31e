"""Settings come from the environment with safe defaults and fail loudly on bad values.

Importing them has no side effect; config.bootstrap creates the folders and the secret key.
"""

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core.exceptions import ImproperlyConfigured

from config import env
from tests import process_isolation

ROOT = Path(__file__).resolve().parent.parent
# The test run's own configuration, which would leak into a fresh process.
_RUN_VARIABLES = ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_DEBUG", "DJANGO_SECRET_KEY", "DJANGO_SECRET_KEY_FILE",
                  "PROMETHEUS_MULTIPROC_DIR", "PYTEST_XDIST_WORKER", "LAB_METRICS_MULTIPROCESS")


def fresh_env(var_dir, **extra):
    full = {k: v for k, v in os.environ.items() if k not in _RUN_VARIABLES}
    full.update(LAB_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="config.settings", **extra)
    return full


def python(code, env_vars):
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env_vars, capture_output=True, text=True,
                          timeout=60)


def check(tmp_path, **extra):
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=fresh_env(tmp_path, **extra),
                          capture_output=True, text=True, timeout=60)


# --- readers --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("read", "value", "message"),
    [
        (lambda: env.integer("LAB_T", 1, low=0, high=9), "x", "LAB_T must be an integer from 0 to 9, got 'x'"),
        (lambda: env.integer("LAB_T", 1, low=0, high=9), "10", "LAB_T must be an integer from 0 to 9, got 10"),
        (lambda: env.positive_int("LAB_T", 1), "0", "LAB_T must be an integer at least 1, got 0"),
        (lambda: env.number("LAB_T", 1.0, 0.0, 2.0), "2.5", "LAB_T must be a number from 0.0 to 2.0, got 2.5"),
        (lambda: env.number("LAB_T", 1.0, 0.0, 2.0), "nan", "LAB_T must be a number from 0.0 to 2.0, got nan"),
        (lambda: env.number("LAB_T", 1.0, 0.0, 1e400), "inf", "LAB_T must be a number from 0.0 to inf, got inf"),
        (lambda: env.number("LAB_T", 1.0, 0.0, 2.0), "one", "LAB_T must be a number from 0.0 to 2.0, got 'one'"),
        (lambda: env.boolean("LAB_T", False), "perhaps", "LAB_T must be a boolean (true/false, 1/0, yes/no, on/off)"),
        (lambda: env.choice("LAB_T", "a", ("a", "b")), "c", "LAB_T must be one of 'a', 'b', got 'c'"),
        (lambda: env.integer_list("LAB_T", [1], low=1), "1,x", "LAB_T must be comma-separated integers, got 'x'"),
        (lambda: env.integer_list("LAB_T", [1], low=1), "1,0", "comma-separated integers of at least 1, got 0"),
    ],
)
def test_a_bad_value_names_the_variable_and_the_rule(monkeypatch, read, value, message):
    monkeypatch.setenv("LAB_T", value)
    with pytest.raises(ImproperlyConfigured) as caught:
        read()
    assert message in str(caught.value)


def test_readers_parse_good_values_and_fall_back_to_the_default(monkeypatch):
    monkeypatch.delenv("LAB_T", raising=False)
    assert (env.integer("LAB_T", 7), env.number("LAB_T", 0.5, 0, 1), env.boolean("LAB_T", True)) == (7, 0.5, True)
    assert env.text_list("LAB_T", ["a"]) == ["a"]
    monkeypatch.setenv("LAB_T", " 3 ")
    assert (env.integer("LAB_T", 7, low=3, high=3), env.number("LAB_T", 0.5, 3, 3)) == (3, 3.0)
    monkeypatch.setenv("LAB_T", "Off")
    assert env.boolean("LAB_T", True) is False
    monkeypatch.setenv("LAB_T", " a, b ,,c")
    assert env.text_list("LAB_T", []) == ["a", "b", "c"]
    monkeypatch.setenv("LAB_T", "warning")
    assert env.choice("LAB_T", "INFO", ("INFO", "WARNING"), fold_case=True) == "WARNING"


def test_lab_settings_are_named_after_their_variable():
    # `LAB_X = reader("LAB_Y", ...)`: a setting read under another name than its own.
    assignment = re.compile(r"^((?:LAB|ANTHROPIC)_\w+) = [\w.]+\(\"(\w+)\"", re.MULTILINE)
    pairs = [m.groups() for path in sorted((ROOT / "config" / "settings").glob("*.py"))
             for m in assignment.finditer(path.read_text())]
    assert len(pairs) >= 50
    assert [(name, var) for name, var in pairs if name != var] == []


FLOAT_BOUNDS_SCRIPT = """
import json, os, sys
import config.settings as s
names = sorted(n for n in dir(s) if n.isupper() and isinstance(getattr(s, n), float))
errors = {}
for name in names:
    for value in ("1e300", "-1e300", "nan"):
        os.environ[name] = value
        for module in [m for m in sys.modules if m.startswith("config.settings")]:
            del sys.modules[module]
        try:
            import config.settings
        except Exception as exc:
            errors.setdefault(name, []).append(f"{type(exc).__name__}: {exc}")
        del os.environ[name]
print(json.dumps({"names": names, "errors": errors}))
"""


def test_every_float_setting_is_bounded_under_its_own_name(tmp_path):
    out = python(FLOAT_BOUNDS_SCRIPT, fresh_env(tmp_path / "var", DJANGO_SECRET_KEY="k" * 50))
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert "LAB_ALERT_SIGNIFICANCE" in result["names"] and "ANTHROPIC_TIMEOUT_SECONDS" in result["names"]
    assert len(result["names"]) >= 10
    for name in result["names"]:
        messages = result["errors"].get(name, [])
        assert len(messages) == 3, (name, messages)
        assert all(m.startswith(f"ImproperlyConfigured: {name} must be a number from") for m in messages), messages


def test_defaults_are_safe(tmp_path):
    code = (
        "import django; django.setup(); from django.conf import settings as s;"
        "print(s.DEBUG, s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.SESSION_COOKIE_SECURE)"
    )
    out = python(f"from config.bootstrap import bootstrap; bootstrap(); {code}", fresh_env(tmp_path))
    assert out.stdout.split() == ["False", "django.db.backends.sqlite3", "filesystem://", "False"], out.stderr


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("LAB_ITERATION_TIME_LIMIT", "10", "LAB_ITERATION_TIME_LIMIT must be greater than"),
        ("LAB_MAX_CONCURRENT_ITERATIONS", "0", "LAB_MAX_CONCURRENT_ITERATIONS must be an integer at least 1"),
        ("LAB_MAX_CONCURRENT_ITERATIONS", "many", "LAB_MAX_CONCURRENT_ITERATIONS must be an integer"),
        ("LAB_LOG_FORMAT", "xml", "LAB_LOG_FORMAT must be one of 'text', 'json', got 'xml'"),
        ("LAB_ALERT_WIN_RATE_DROP", "2", "LAB_ALERT_WIN_RATE_DROP must be a number from 0.0 to 1.0, got 2.0"),
        ("DJANGO_DEBUG", "perhaps", "DJANGO_DEBUG must be a boolean"),
        ("LAB_FEED_BACKOFF_SECONDS", "60", "LAB_FEED_BACKOFF_SECONDS must be at most LAB_FEED_MAX_BACKOFF_SECONDS"),
        ("LAB_CLAUDE_MODEL", "claude-x", "LAB_CLAUDE_MODEL is now called ANTHROPIC_MODEL"),
    ],
)
def test_bad_values_stop_the_process_naming_the_variable(tmp_path, name, value, words):
    result = check(tmp_path, **{name: value})
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {words}" in result.stderr, result.stderr[-2000:]


# --- no side effect at import; bootstrap does them -------------------------------------------
SNAPSHOT = "import json, os; print(json.dumps(os.environ.get('PROMETHEUS_MULTIPROC_DIR')))"


def test_importing_the_settings_creates_nothing(tmp_path):
    var_dir = tmp_path / "var"
    out = python(f"import config.settings as s; {SNAPSHOT}; print(s.SECRET_KEY)",
                 fresh_env(var_dir, DJANGO_SECRET_KEY="k" * 50))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["null", "k" * 50]  # PROMETHEUS_MULTIPROC_DIR left alone
    assert not var_dir.exists()


def test_without_a_key_and_without_bootstrap_the_import_fails_clearly_and_creates_nothing(tmp_path):
    var_dir = tmp_path / "var"
    out = python("import config.settings", fresh_env(var_dir))
    assert out.returncode != 0
    assert "ImproperlyConfigured: no secret key: set DJANGO_SECRET_KEY or DJANGO_SECRET_KEY_FILE" in out.stderr
    assert not var_dir.exists()


BOOTSTRAP_TWICE = (
    "from config.bootstrap import bootstrap; bootstrap(); bootstrap();"
    f"import config.settings as s; {SNAPSHOT}; print(s.SECRET_KEY)"
)


def test_bootstrap_creates_the_folders_the_key_and_the_metrics_folder(tmp_path):
    var_dir = tmp_path / "var"
    out = python(BOOTSTRAP_TWICE, fresh_env(var_dir))
    assert out.returncode == 0, out.stderr[-2000:]
    metrics_dir, key = out.stdout.split()
    assert json.loads(metrics_dir) == str(var_dir / "prometheus")
    assert (var_dir / "prometheus").is_dir()
    assert sorted(p.name for p in (var_dir / "broker").iterdir()) == ["control", "processed", "queue"]
    key_file = var_dir / "secret_key"
    assert key == key_file.read_text().strip() and len(key) == 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # A second start keeps the key (sessions survive restarts).
    again = python(BOOTSTRAP_TWICE, fresh_env(var_dir))
    assert again.stdout.split()[1] == key


def test_bootstrap_writes_no_key_when_one_is_given_nor_broker_folders_for_a_server(tmp_path):
    var_dir = tmp_path / "var"
    out = python(BOOTSTRAP_TWICE, fresh_env(var_dir, DJANGO_SECRET_KEY="k" * 50, LAB_METRICS_MULTIPROCESS="0",
                                            CELERY_BROKER_URL="redis://127.0.0.1:6379/9"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["null", "k" * 50]
    assert sorted(p.name for p in var_dir.iterdir()) == []


def test_manage_py_bootstraps_a_fresh_var_folder(tmp_path):
    result = check(tmp_path / "fresh")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "fresh" / "secret_key").is_file()


# --- the test processes' isolation (tests/process_isolation.py) -------------------------------
@pytest.mark.parametrize(
    ("url", "worker", "expected"),
    [
        ("redis://127.0.0.1:6379/5", "gw0", "redis://127.0.0.1:6379/6"),
        ("redis://127.0.0.1:6379/5", "gw3", "redis://127.0.0.1:6379/9"),
        ("redis://:pw@redis.example:6380", "gw1", "redis://:pw@redis.example:6380/2"),
    ],
)
def test_each_xdist_process_gets_its_own_folders_and_redis_database(monkeypatch, tmp_path, url, worker, expected):
    monkeypatch.setenv("LAB_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prometheus"))  # the controller's
    process_isolation.isolate(worker)
    assert os.environ["LAB_VAR_DIR"] == str(tmp_path / worker)
    assert os.environ["CELERY_BROKER_URL"] == expected
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    assert env.metrics_dir() == tmp_path / worker / "prometheus"


@pytest.mark.skipif(not os.environ.get("PYTEST_XDIST_WORKER"), reason="runs under pytest-xdist (-n)")
def test_this_xdist_process_runs_on_its_own_folder(settings):
    worker = os.environ["PYTEST_XDIST_WORKER"]
    assert settings.VAR_DIR.name == worker
    assert Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).parent == settings.VAR_DIR
    # Celery reads the variable itself: it and the setting name the same broker.
    assert os.environ.get("CELERY_BROKER_URL", "filesystem://") == settings.CELERY_BROKER_URL
    if settings.CELERY_BROKER_URL.startswith("redis://"):
        assert int(urlsplit(settings.CELERY_BROKER_URL).path.lstrip("/")) >= 1 + int(worker.removeprefix("gw"))
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        assert Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]).is_relative_to(settings.VAR_DIR)
