"""Log formatting and context: one configuration for web, workers and beat.

settings.LOGGING puts two filters on the console handler and picks the formatter by
LAB_LOG_FORMAT:

- `ContextFilter` copies the current log context (contextvars) onto every record:
  `agent_id` and `iteration_id` while an iteration runs (`agents.services.learning` wraps
  `iteration_run` in `log_context`), `task_id` and `task_name` while a Celery task runs
  (config.observability.celery_signals). A value passed explicitly with `extra=` wins.
- `RedactFilter` scrubs secrets from the message, the exception text and the extra fields
  before any formatter sees them (config.redaction).
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
from contextlib import contextmanager

from config.redaction import redact, redact_structure

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
                setattr(record, key, redact_structure(value))
        return True


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
