"""Suite-wide fixtures and the loud skip of what needs a server this machine lacks."""

import os
import socket
from urllib.parse import urlparse

import pytest
from django.conf import settings


def _reachable(url, default_port):
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def _missing_servers():
    missing = {}
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.sqlite3":
        url = f"postgres://{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}"
        if not _reachable(url, 5432):
            missing["database"] = f"PostgreSQL at {db.get('HOST')}:{db.get('PORT')} is unreachable"
    broker = settings.CELERY_BROKER_URL
    if broker.startswith(("redis://", "amqp://")):
        port = 6379 if broker.startswith("redis") else 5672
        if not _reachable(broker, port):
            missing["broker"] = f"broker {urlparse(broker).hostname}:{urlparse(broker).port} is unreachable"
    return missing


def pytest_collection_modifyitems(config, items):
    missing = _missing_servers()
    if not missing:
        return
    reason = "; ".join(missing.values())
    if os.environ.get("LAB_REQUIRE_SERVERS"):
        raise pytest.UsageError(f"LAB_REQUIRE_SERVERS is set but {reason}")
    banner = f"\n{'!' * 78}\nSKIPPING tests that need a server: {reason}\n{'!' * 78}\n"
    config.get_terminal_writer().line(banner, red=True, bold=True)
    for item in items:
        needs_db = "database" in missing and ("django_db" in item.keywords or "db" in getattr(item, "fixturenames", ()))
        needs_broker = "broker" in missing and "celery_worker" in item.keywords
        if needs_db or needs_broker:
            item.add_marker(pytest.mark.skip(reason=f"needs a server: {reason}"))


@pytest.fixture(autouse=True)
def _fresh_bar_cache():
    # Cached bar arrays are per process; a test must never see another test's bars.
    from agents.market.cache import clear_bar_cache

    clear_bar_cache()
    yield


# --- fixtures shared by several test packages (imports inside, like the one above) ----------------
@pytest.fixture
def notified(monkeypatch):
    """The alert ids handed to alerts.notify.alert_notify (after commit), in order; nothing is sent."""
    calls = []
    monkeypatch.setattr("alerts.notify.alert_notify", calls.append)
    return calls


@pytest.fixture
def clock(time_machine):
    """clock(moment) freezes time there (no ticking) and returns it."""

    def move(moment):
        time_machine.move_to(moment, tick=False)
        return moment

    return move


@pytest.fixture
def user(db):
    from tests.factories import UserFactory

    return UserFactory(username="alice")


@pytest.fixture
def api(user):
    """An API client authenticated as `user`."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
    return client
