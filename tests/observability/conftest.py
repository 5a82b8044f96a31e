"""Fixtures of the observability tests: log capture through the lab's own formatter and
filters, a raw capture ahead of every filter, a frozen clock and captured notifications."""

import io
import json
import logging

import pytest

from config.observability.logging import ContextFilter, JsonFormatter, RedactFilter


class Captured:
    def __init__(self, stream):
        self.stream = stream

    @property
    def text(self):
        return self.stream.getvalue()

    def lines(self):
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]


@pytest.fixture
def json_logs():
    """Every record reaching the root logger, formatted as the lab's JSON lines (DEBUG up)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield Captured(stream)
    root.removeHandler(handler)
    root.setLevel(old_level)


class _Raw(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.texts = []

    def emit(self, record):
        text = logging.Formatter("%(name)s %(message)s").format(record)
        self.texts.append(text + " " + " ".join(f"{k}={v}" for k, v in vars(record).items()))


@pytest.fixture
def raw_logs():
    """Records as the code logged them, before any redaction (the first root handler)."""
    handler = _Raw()
    root = logging.getLogger()
    old_level = root.level
    root.handlers.insert(0, handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old_level)
