"""Fixtures of the console tests: users with and without rights, a small lab, and a headless
Chromium driven by Playwright against pytest-django's live server."""

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

# The sync Playwright API runs an event loop in the test thread; Django would otherwise refuse
# the ORM calls the test itself makes while a page is open.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PASSWORD = "pw-for-tests-1"
# Metrics (per fold and on the sealed test window) that pass the lab's default graduation criteria.
GOOD = {"win_rate": 0.6, "sharpe": 1.2, "total_return": 0.1, "num_trades": 12.0, "max_drawdown": 0.1, "psr": 0.9}


@pytest.fixture(autouse=True)
def _no_notifications(notified):
    # Alerts raised here are checked on the pages; their channel fan-out is the alerts app's business.
    return notified


def staff_user(username, *, live=False, view_only=False):
    """A staff member who is not a superuser: sees only their own agents."""
    from tests.factories import UserFactory

    user = UserFactory(username=username, is_staff=True)
    perms = Permission.objects.filter(content_type__app_label__in=["agents", "alerts", "graduation"])
    if view_only:
        perms = perms.filter(codename__startswith="view_")
    if not live:
        perms = perms.exclude(codename="approve_live_trading")
    user.user_permissions.set(perms)
    return user


@pytest.fixture
def operator(db):
    return staff_user("operator")


@pytest.fixture
def other_owner(db):
    return staff_user("other")


@pytest.fixture
def instrument(db):
    from tests.factories import InstrumentFactory, random_walk_bars

    return random_walk_bars(InstrumentFactory(symbol="CONSOLE"), n=500, seed=3)


def add_iteration(agent, metrics=None, **fields):
    """A finished iteration of the current version (no backtest); a succeeded one carries the
    protocol's evidence: the metrics on every fold and on the sealed test window, and a deflated
    Sharpe, PBO and sealed window that pass the lab's default criteria (tests.graduation.helpers)."""
    from agents.models import IterationStatus, LearningIteration
    from tests.graduation.helpers import GOOD_EVIDENCE, GOOD_STATS

    number = (LearningIteration.objects.filter(agent=agent).order_by("-number")
              .values_list("number", flat=True).first() or 0) + 1
    measured = {**GOOD, **(metrics or {})}
    values = {"status": IterationStatus.SUCCEEDED, "version": agent.current_version, "score": 1.0,
              "finished_at": timezone.now()}
    if fields.get("status", IterationStatus.SUCCEEDED) == IterationStatus.SUCCEEDED:
        values.update(
            validation_metrics=measured, fold_metrics=[measured] * 5, selection_score=1.0, n_trials=number * 4,
            train_metrics={**measured, "num_trades": measured["num_trades"] * 5}, evidence=dict(GOOD_STATS),
            windows={"test": {"start": "2011-01-01T00:00:00", "end": "2011-10-01T00:00:00", "bars": 200}},
            **GOOD_EVIDENCE,
        )
    return LearningIteration.objects.create(agent=agent, number=number, **{**values, **fields})


def eligible_agent(owner, instrument, name="Graduate me"):
    """A learning agent eligible for paper trading (three good iterations, min_iterations 3)."""
    from tests.factories import make_agent

    agent = make_agent(owner=owner, instrument=instrument, name=name)
    agent.graduation_criteria = {"min_iterations": 3}
    agent.save(update_fields=["graduation_criteria"])
    for _ in range(3):
        add_iteration(agent)
    return agent


def raise_alert(agent, message="Validation Sharpe fell by 40% over the last 3 iterations", severity="WARNING"):
    from alerts.models import AlertType
    from alerts.services import raise_alert as raise_service

    alert, _created = raise_service(agent, AlertType.PERFORMANCE_DEGRADATION, severity, message,
                                    fingerprint=f"test:{message[:20]}")
    return alert


def days_ago(n):
    return timezone.now() - dt.timedelta(days=n)


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
