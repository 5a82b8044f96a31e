"""Log formatting, context and redaction: one configuration for web, workers and beat.

settings.LOGGING puts two filters on the console handler and picks the formatter by
LAB_LOG_FORMAT:

- `ContextFilter` copies the current log context (contextvars) onto every record:
  `agent_id` and `iteration_id` while an iteration runs (`agents.services.learning` wraps
  `iteration_run` in `log_context`), `task_id` and `task_name` while a Celery task runs
  (config.observability.celery_signals). A value passed explicitly with `extra=` wins.
- `RedactFilter` scrubs secrets from the message, the exception text and the extra fields
  before any formatter sees them (see `redact`).
- `TextFormatter` (default): `time LEVEL logger: message [agent=.. iteration=..]`.
- `JsonFormatter` (LAB_LOG_FORMAT=json): one JSON object per line with `time` (UTC,
  ISO 8601), `level`, `logger`, `message`, `process`, the context fields when set, any
  `extra=` fields, and `exc_info` / `stack_info` as text.

Celery workers and beat log through this same configuration: CELERY_WORKER_HIJACK_ROOT_LOGGER
is False, so Celery leaves the root logger's handlers (ours) in place.
"""

import contextvars
import datetime as dt
import json
import logging
import re
from contextlib import contextmanager

CONTEXT_FIELDS = ("agent_id", "iteration_id", "task_id", "task_name")
_context = contextvars.ContextVar("lab_log_context", default=None)


@contextmanager
def log_context(**fields):
    """Within the block, every record carries these fields (None values are ignored)."""
    token = push_log_context(**fields)
    try:
        yield
    finally:
        pop_log_context(token)


def push_log_context(**fields):
    """Add fields to the context; returns the token `pop_log_context` takes to undo it."""
    return _context.set({**(_context.get() or {}), **{k: _plain(v) for k, v in fields.items() if v is not None}})


def pop_log_context(token):
    try:
        _context.reset(token)
    except ValueError:  # the token belongs to another context (e.g. another thread): start clean
        _context.set(None)


def bind_log_context(**fields):
    """Add fields to the current context; the enclosing `log_context` block undoes it on exit."""
    push_log_context(**fields)


def _plain(value):
    return value if isinstance(value, int | float | bool | str) else str(value)


# --- redaction -----------------------------------------------------------------------------
REDACTED = "[redacted]"
_PATTERNS = [
    # Anthropic API keys, whoever formats them.
    (re.compile(r"sk-ant-[A-Za-z0-9_\-]{4,}"), REDACTED),
    # HMAC signatures (the webhook's X-Lab-Signature: sha256=<hex>).
    (re.compile(r"(sha(?:1|256|512)=)[0-9a-fA-F]{16,}"), r"\1" + REDACTED),
    # Credentials in header form, whatever the quoting: "Authorization: Bearer x",
    # "'x-api-key': 'x'", "X-Lab-Signature=...", "Cookie: sessionid=...".
    (
        re.compile(
            r"(?i)(\b(?:proxy-)?authorization|\bx-api-key|\bx-lab-signature|\bcookie|\bset-cookie)"
            r"([\"']?\s*[:=]\s*[\"']?)([^\"'\r\n,}]+)"
        ),
        r"\1\2" + REDACTED,
    ),
    # Bare auth schemes (DRF's "Token <key>", OAuth "Bearer <token>", "Basic <b64>").
    (re.compile(r"\b(Bearer|Token|Basic)\s+[A-Za-z0-9._~+/=\-]{8,}"), r"\1 " + REDACTED),
    # key=value / "key": "value" where the key names a secret.
    (
        re.compile(
            r"(?i)(\b[\w-]*(?:api[_-]?key|secret|password|passwd|access[_-]?token|auth[_-]?token|\btoken))"
            r"([\"']?\s*[:=]\s*[\"']?)([^\s\"',;&}]+)"
        ),
        r"\1\2" + REDACTED,
    ),
    # SQL debug lines (DEBUG=True): the value compared with a token, session or password column.
    (
        re.compile(r"""(?i)("(?:key|session_key|password|secret|token)")(\s*(?:=|IN\s*\()\s*)'[^']*'"""),
        r"\1\2'" + REDACTED + "'",
    ),
    # Passwords in URLs: scheme://user:password@host.
    (re.compile(r"(\b[a-z][a-z0-9+.\-]*://[^:/@\s]*:)[^@/\s]+@"), r"\1" + REDACTED + "@"),
]
_MIN_LITERAL_SECRET = 6
_literal_cache = {"key": None, "pattern": None}


def _literal_secrets():
    """Secret values known to the settings; each is scrubbed wherever it appears."""
    try:
        from django.conf import settings

        if not settings.configured:
            return ()
        values = [
            getattr(settings, "ANTHROPIC_API_KEY", ""),
            getattr(settings, "SECRET_KEY", ""),
            getattr(settings, "LAB_METRICS_TOKEN", ""),
            getattr(settings, "EMAIL_HOST_PASSWORD", ""),
            settings.DATABASES.get("default", {}).get("PASSWORD", ""),
        ]
    except Exception:  # logging must never fail because settings are half-loaded
        return ()
    return tuple(sorted({str(v) for v in values if v and len(str(v)) >= _MIN_LITERAL_SECRET}, key=len, reverse=True))


def _literal_pattern():
    secrets = _literal_secrets()
    if secrets != _literal_cache["key"]:
        _literal_cache["key"] = secrets
        _literal_cache["pattern"] = re.compile("|".join(re.escape(s) for s in secrets)) if secrets else None
    return _literal_cache["pattern"]


def redact(text, *extra_secrets):
    """`text` with every known secret value and every secret-looking pattern replaced."""
    if not text:
        return text
    text = str(text)
    for secret in extra_secrets:
        if secret:
            text = text.replace(str(secret), REDACTED)
    literal = _literal_pattern()
    if literal is not None:
        text = literal.sub(REDACTED, text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# Attributes every LogRecord has; anything else on a record came from `extra=` or a filter.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}


def extra_fields(record):
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS and not k.startswith("_")}


class RedactFilter(logging.Filter):
    """Scrubs the record in place (message, exception text, string extras); never drops it."""

    def filter(self, record):
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what we have, still scrubbed
            message = f"{record.msg} {record.args}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in extra_fields(record).items():
            if isinstance(value, str):
                setattr(record, key, redact(value))
            elif isinstance(value, dict | list | tuple):
                setattr(record, key, _redact_structure(value))
        return True


def _redact_structure(value):
    if isinstance(value, dict):
        return {k: _redact_structure(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_structure(v) for v in value]
    return redact(value) if isinstance(value, str) else value


class ContextFilter(logging.Filter):
    """Copies the current log context onto the record (explicit `extra=` values win)."""

    def filter(self, record):
        for key, value in (_context.get() or {}).items():
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        return True


# --- formatters ----------------------------------------------------------------------------
class TextFormatter(logging.Formatter):
    """Human-readable lines; the agent / iteration / task of the context appended in brackets."""

    default_format = "%(asctime)s %(levelname)s %(name)s: %(message)s"

    def __init__(self, fmt=None, datefmt=None, style="%", **kwargs):
        super().__init__(fmt or self.default_format, datefmt, style, **kwargs)

    def formatMessage(self, record):
        line = super().formatMessage(record)
        context = [
            f"{label}={getattr(record, key)}"
            for key, label in (("agent_id", "agent"), ("iteration_id", "iteration"), ("task_id", "task"))
            if getattr(record, key, None) is not None
        ]
        return f"{line} [{' '.join(context)}]" if context else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module docstring for the fields)."""

    def format(self, record):
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for key, value in extra_fields(record).items():
            if value is not None:
                entry.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)
