"""Fixtures shared by the notification tests (helpers live in test_webhook.py)."""

import pytest

from tests.alerts import test_webhook as hooks


@pytest.fixture
def receiver_factory():
    receivers = hooks.Receivers()
    yield receivers
    receivers.close()


@pytest.fixture
def allow_private(settings):
    return hooks.allow_private_targets(settings)


@pytest.fixture
def queued(monkeypatch):
    return hooks.record_queue(monkeypatch)
