"""Structured logs: JSON lines, the agent / iteration context, redaction, one configuration."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents import signals
from agents.services import learning
from config.observability.logging import (
    ContextFilter,
    JsonFormatter,
    RedactFilter,
    TextFormatter,
    log_context,
)
from config.redaction import redact
from tests.factories import make_agent, make_claude_agent_without_key

ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger("tests.observability")


def record(message, *args, exc_info=None, **extra):
    rec = logging.LogRecord("lab.test", logging.WARNING, __file__, 1, message, args, exc_info)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def through(rec, formatter):
    ContextFilter().filter(rec)
    RedactFilter().filter(rec)
    return formatter.format(rec)


def test_a_json_line_has_the_fields_and_parses():
    with log_context(agent_id="a-1", iteration_id=7):
        line = through(record("scored %s", 1.5, alert_type="ERROR"), JsonFormatter())
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "lab.test"
    assert entry["message"] == "scored 1.5"
    assert entry["time"].endswith("Z") and "T" in entry["time"]
    assert (entry["agent_id"], entry["iteration_id"], entry["alert_type"]) == ("a-1", 7, "ERROR")


def test_exceptions_are_one_line_of_json_with_the_traceback():
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        rec = record("failed", exc_info=sys.exc_info())
    entry = json.loads(through(rec, JsonFormatter()))
    assert "Traceback" in entry["exc_info"] and "ValueError: bad" in entry["exc_info"]


def test_fields_outside_a_context_are_absent_and_explicit_extra_wins():
    entry = json.loads(through(record("plain"), JsonFormatter()))
    assert "agent_id" not in entry and "iteration_id" not in entry
    with log_context(agent_id="ctx"):
        entry = json.loads(through(record("explicit", agent_id="given"), JsonFormatter()))
    assert entry["agent_id"] == "given"


def test_contexts_nest_and_are_undone_on_exit():
    with log_context(agent_id="a"):
        with log_context(iteration_id=3):
            inner = json.loads(through(record("x"), JsonFormatter()))
        outer = json.loads(through(record("y"), JsonFormatter()))
    after = json.loads(through(record("z"), JsonFormatter()))
    assert (inner["agent_id"], inner["iteration_id"]) == ("a", 3)
    assert outer["agent_id"] == "a" and "iteration_id" not in outer
    assert "agent_id" not in after


def test_the_text_format_shows_the_context_in_brackets():
    with log_context(agent_id="a-1", iteration_id=7):
        line = through(record("hello"), TextFormatter())
    assert line.endswith("WARNING lab.test: hello [agent=a-1 iteration=7]")


@pytest.mark.django_db(transaction=True)  # after-commit receivers run as in production
def test_records_logged_during_an_iteration_carry_its_agent_and_iteration(json_logs, settings):
    def after_iteration(sender, agent_id=None, iteration_id=None, **kwargs):
        log.info("receiver saw iteration %s", iteration_id)

    signals.iteration_finished.connect(after_iteration, dispatch_uid="test-log-context")
    try:
        ok_agent = make_agent()
        ok, _ = learning.iteration_run_now(ok_agent, trigger="manual")
        # Claude without an API key fails the iteration, which logs a warning inside the run.
        failing_agent = make_claude_agent_without_key(settings)
        failed, _ = learning.iteration_run_now(failing_agent, trigger="manual")
    finally:
        signals.iteration_finished.disconnect(dispatch_uid="test-log-context")
    assert (ok.status, failed.status) == ("succeeded", "failed")
    lines = json_logs.lines()
    receiver_lines = [e for e in lines if e["message"].startswith("receiver saw")]
    assert {(e["agent_id"], e["iteration_id"]) for e in receiver_lines} == {
        (str(ok_agent.pk), ok.pk), (str(failing_agent.pk), failed.pk)}
    [failure] = [e for e in lines if "failed:" in e["message"] and e["logger"] == "agents.services.learning"]
    assert (failure["agent_id"], failure["iteration_id"], failure["level"]) == (
        str(failing_agent.pk), failed.pk, "WARNING")
    # Outside the run, nothing is attributed to an iteration.
    log.info("after the runs")
    assert "iteration_id" not in json_logs.lines()[-1]


SECRETS = {
    "sk-ant-api03-AbCdEf0123456789_xyz": "Claude said: invalid x-api-key sk-ant-api03-AbCdEf0123456789_xyz",
    "Bearer abcdef0123456789": "headers {'Authorization': 'Bearer abcdef0123456789'}",
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08":
        "X-Lab-Signature: sha256=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "0123456789abcdef0123456789abcdef01234567": "Authorization: Token 0123456789abcdef0123456789abcdef01234567",
    "hunter2hunter2": 'login {"password": "hunter2hunter2"}',
    "redis-pass-77": "connecting to redis://:redis-pass-77@cache:6379/0",
    "tok-xyz-123456": "GET /x?access_token=tok-xyz-123456&a=1",
    "a1b2c3d4e5": """(0.001) SELECT ... FROM "authtoken_token" WHERE "authtoken_token"."key" = 'a1b2c3d4e5'""",
}


@pytest.mark.parametrize(("secret", "text"), list(SECRETS.items()), ids=list(range(len(SECRETS))))
def test_redaction_patterns(secret, text):
    assert secret not in redact(text)
    assert "[redacted]" in redact(text)


def test_redaction_keeps_ordinary_text():
    text = "iteration 3: input_tokens=1200 output_tokens=300 max_tokens=4096 sharpe=1.2 http://host:8000/x"
    assert redact(text) == text


def test_setting_values_are_scrubbed_wherever_they_appear(settings):
    settings.ANTHROPIC_API_KEY = "custom-gateway-key-4242"
    settings.LAB_METRICS_TOKEN = "metrics-token-777"
    rec = record("key %s token %s", "custom-gateway-key-4242", "metrics-token-777",
                 details={"nested": ["custom-gateway-key-4242"]})
    line = through(rec, JsonFormatter())
    assert "custom-gateway-key-4242" not in line and "metrics-token-777" not in line
    assert json.loads(line)["details"] == {"nested": ["[redacted]"]}


def test_secrets_in_exception_text_are_scrubbed():
    try:
        raise RuntimeError("rejected key sk-ant-api03-SECRETSECRET")
    except RuntimeError:
        rec = record("call failed", exc_info=sys.exc_info())
    assert "SECRETSECRET" not in through(rec, JsonFormatter())


def _django_logs(env, code):
    env = {**os.environ, **env, "DJANGO_SETTINGS_MODULE": "config.settings"}
    script = f"import django, logging\ndjango.setup()\n{code}\n"
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60, check=True).stderr.strip().splitlines()


def test_lab_log_format_json_selects_json_lines_and_the_filters_are_on():
    code = ("from config.observability import log_context\n"
            "with log_context(agent_id='A', iteration_id=9):\n"
            "    logging.getLogger('lab.x').warning('key sk-ant-api03-zzzzzzzz leaked?')")
    [line] = _django_logs({"LAB_LOG_FORMAT": "json"}, code)
    entry = json.loads(line)
    assert (entry["logger"], entry["agent_id"], entry["iteration_id"]) == ("lab.x", "A", 9)
    assert "zzzzzzzz" not in line


def test_text_is_the_default_format():
    [line] = _django_logs({"LAB_LOG_FORMAT": "text"}, "logging.getLogger('lab.x').warning('hello')")
    assert line.endswith("WARNING lab.x: hello")
