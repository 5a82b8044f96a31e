"""Helpers of the console tests: staff users with and without rights, a small lab's iterations,
agents and alerts, and where the browser tests find Chromium."""

import os
import shutil

from django.contrib.auth.models import Permission
from django.utils import timezone

from agents.models import IterationStatus, LearningIteration
from alerts.models import AlertType
from alerts.services import alert_raise
from tests.factories import UserFactory, make_agent
from tests.graduation.helpers import GOOD_EVIDENCE, GOOD_STATS

CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")
PASSWORD = "pw-for-tests-1"  # the factories' password (tests/factories.py)
# Metrics (per fold and on the sealed test window) that pass the lab's default graduation criteria.
GOOD = {"win_rate": 0.6, "sharpe": 1.2, "total_return": 0.1, "num_trades": 12.0, "max_drawdown": 0.1, "psr": 0.9}


def staff_user(username, *, live=False, view_only=False):
    """A staff member who is not a superuser: sees only their own agents."""
    user = UserFactory(username=username, is_staff=True)
    perms = Permission.objects.filter(content_type__app_label__in=["agents", "alerts", "graduation"])
    if view_only:
        perms = perms.filter(codename__startswith="view_")
    if not live:
        perms = perms.exclude(codename="approve_live_trading")
    user.user_permissions.set(perms)
    return user


def add_iteration(agent, metrics=None, **fields):
    """A finished iteration of the current version (no backtest); a succeeded one carries the
    protocol's evidence: the metrics on every fold and on the sealed test window, and a deflated
    Sharpe, PBO and sealed window that pass the lab's default criteria (tests.graduation.helpers)."""
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
    agent = make_agent(owner=owner, instrument=instrument, name=name)
    agent.graduation_criteria = {"min_iterations": 3}
    agent.save(update_fields=["graduation_criteria"])
    for _ in range(3):
        add_iteration(agent)
    return agent


def open_alert(agent, message="Validation Sharpe fell by 40% over the last 3 iterations", severity="WARNING"):
    alert, _created = alert_raise(agent, alert_type=AlertType.PERFORMANCE_DEGRADATION, severity=severity,
                                  message=message, fingerprint=f"test:{message[:20]}")
    return alert
