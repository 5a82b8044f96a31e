"""Production settings pass `manage.py check --deploy` with no warning at all.

Each check runs in a fresh process with a production-like environment (settings are read once, at
import): a long random DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE), LAB_HTTPS=1,
DJANGO_ALLOWED_HOSTS, DEBUG left off. The controls show the check is not vacuous: the same command
fails on the development defaults and with DJANGO_DEBUG=1.
"""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Anything of the test run's own configuration that would leak into the production process.
_DROP_PREFIXES = ("DJANGO_", "LAB_", "PROMETHEUS_MULTIPROC_DIR", "PYTEST_XDIST_WORKER")


def production_env(var_dir, **overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP_PREFIXES)}
    env.update({
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "LAB_HTTPS": "1",
        "DJANGO_ALLOWED_HOSTS": "lab.example.com",
        "LAB_VAR_DIR": str(var_dir),
    })
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run(args, env, timeout=120):
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def check_deploy(env):
    return run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)


def test_production_settings_pass_check_deploy_with_no_warnings(tmp_path):
    result = check_deploy(production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


def test_the_secret_may_come_from_a_file(tmp_path):
    key_file = tmp_path / "secret_key"
    key_file.write_text(secrets.token_urlsafe(64) + "\n")
    key_file.chmod(0o600)
    env = production_env(tmp_path / "var", DJANGO_SECRET_KEY=None, DJANGO_SECRET_KEY_FILE=str(key_file))
    result = check_deploy(env)
    assert result.returncode == 0, result.stdout + result.stderr
    # The key used is the file's, not one generated under var/.
    assert not (tmp_path / "var" / "secret_key").exists()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"LAB_HTTPS": None}, ["security.W004", "security.W008", "security.W012", "security.W016"]),
        ({"DJANGO_DEBUG": "1"}, ["security.W018"]),
        ({"DJANGO_SECRET_KEY": "short"}, ["security.W009"]),
    ],
    ids=["no-https", "debug-on", "weak-secret"],
)
def test_controls_the_check_does_fail_on_unsafe_settings(tmp_path, overrides, expected):
    result = check_deploy(production_env(tmp_path, **overrides))
    assert result.returncode != 0
    for code in expected:
        assert code in result.stderr + result.stdout, (code, result.stderr)


PROBE = r"""
import json
import django
django.setup()
from django.conf import settings
from django.test import Client

names = ["DEBUG", "ALLOWED_HOSTS", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY",
         "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD",
         "X_FRAME_OPTIONS", "SECURE_CONTENT_TYPE_NOSNIFF", "SECURE_REFERRER_POLICY",
         "SECURE_CROSS_ORIGIN_OPENER_POLICY", "DATA_UPLOAD_MAX_MEMORY_SIZE"]
out = {"settings": {n: getattr(settings, n) for n in names}}
client = Client(HTTP_HOST="lab.example.com")
secure = client.get("/api/schema/", secure=True)
out["https"] = {"status": secure.status_code, "headers": dict(secure.headers)}
plain = client.get("/api/schema/")
out["http"] = {"status": plain.status_code, "location": plain.headers.get("Location")}
out["bad_host"] = Client(HTTP_HOST="evil.example.com").get("/api/schema/", secure=True).status_code
print(json.dumps(out))
"""


def test_production_settings_and_headers(tmp_path):
    result = run(["-c", PROBE], production_env(tmp_path))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    values = out["settings"]
    assert values["DEBUG"] is False
    assert values["ALLOWED_HOSTS"] == ["lab.example.com"]
    assert values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"] and values["SESSION_COOKIE_HTTPONLY"]
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31536000 and values["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert values["X_FRAME_OPTIONS"] == "DENY"
    assert values["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert values["SECURE_REFERRER_POLICY"] == "same-origin"
    assert values["DATA_UPLOAD_MAX_MEMORY_SIZE"] == 1_000_000

    headers = out["https"]["headers"]
    assert out["https"]["status"] == 200
    assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "includeSubDomains" in headers["Strict-Transport-Security"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    # Plain HTTP is redirected to HTTPS; an unknown Host header is refused.
    assert out["http"]["status"] == 301 and out["http"]["location"].startswith("https://lab.example.com/")
    assert out["bad_host"] == 400


def test_development_defaults_are_safe_too(tmp_path):
    # Without any production variable: DEBUG off, local hosts only, a generated per-install secret.
    env = production_env(tmp_path, DJANGO_SECRET_KEY=None, LAB_HTTPS=None, DJANGO_ALLOWED_HOSTS=None)
    # The start-up step (manage.py, wsgi, Celery run it) generates the key; the settings read it.
    result = run(["-c", "from config.bootstrap import bootstrap; bootstrap(); import django; django.setup(); "
                        "from django.conf import settings as s; "
                        "print(s.DEBUG, sorted(s.ALLOWED_HOSTS), len(s.SECRET_KEY))"], env)
    assert result.returncode == 0, result.stderr
    debug, *_rest = result.stdout.split()
    assert debug == "False"
    assert "lab.example.com" not in result.stdout
    key_file = tmp_path / "secret_key"
    assert key_file.exists() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert len(key_file.read_text().strip()) >= 50


def test_throttle_counts_can_be_shared_between_web_processes(tmp_path):
    # With the default (per-process) cache, N gunicorn workers would allow N times each rate.
    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(s.CACHES['default']['BACKEND'], s.CACHES['default']['LOCATION'])")
    shared = run(["-c", code], production_env(tmp_path, LAB_CACHE_URL="redis://127.0.0.1:6379/2"))
    assert shared.returncode == 0, shared.stderr
    assert shared.stdout.split() == ["django.core.cache.backends.redis.RedisCache", "redis://127.0.0.1:6379/2"]
    default = run(["-c", code], production_env(tmp_path))
    assert default.stdout.split()[0] == "django.core.cache.backends.locmem.LocMemCache"
