"""Fixtures of the console tests: an operator and another owner, an instrument, and a headless
Chromium driven by Playwright against pytest-django's live server (helpers live in helpers.py)."""

import os
from pathlib import Path

import pytest

from tests.console.helpers import CHROMIUM, staff_user
from tests.factories import InstrumentFactory, random_walk_bars

# The sync Playwright API runs an event loop in the test thread; Django would otherwise refuse
# the ORM calls the test itself makes while a page is open.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(autouse=True)
def _no_notifications(notified):
    # Alerts raised here are checked on the pages; their channel fan-out is the alerts app's business.
    return notified


@pytest.fixture
def operator(db):
    return staff_user("operator")


@pytest.fixture
def other_owner(db):
    return staff_user("other")


@pytest.fixture
def instrument(db):
    return random_walk_bars(InstrumentFactory(symbol="CONSOLE"), n=500, seed=3)


# --- the browser ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    """One Chromium per module: Playwright's loop stops before the next module's tests run."""
    if not CHROMIUM:
        pytest.skip("no Chromium: install Debian's chromium package (/usr/bin/chromium) to run the browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


@pytest.fixture
def artifacts():
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
