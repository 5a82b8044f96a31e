"""Fixtures shared by the notification tests (their helpers live in helpers.py)."""

import pytest

from tests.alerts import helpers as hooks


@pytest.fixture
def receiver_factory():
    receivers = hooks.Receivers()
    yield receivers
    receivers.close()


@pytest.fixture
def allow_private(settings):
    return hooks.allow_private_targets(settings)


@pytest.fixture
def no_private(settings):
    """The production rule: webhook targets must resolve to public addresses."""
    settings.LAB_WEBHOOK_ALLOW_PRIVATE = False
    settings.LAB_WEBHOOK_TIMEOUT_SECONDS = 2.0
    return settings


@pytest.fixture
def queued(monkeypatch):
    return hooks.record_queue(monkeypatch)
