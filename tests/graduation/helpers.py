"""Shared helpers of the graduation tests: iterations with chosen metrics, bars appended later."""

import datetime as dt

import numpy as np
from django.db import transaction
from django.utils import timezone

from agents.market.cache import mark_bars_changed
from agents.market.models import PriceBar
from agents.models import AgentStatus, IterationStatus, LearningIteration, StrategyVersion, VersionOrigin
from graduation import services
from graduation.models import AccountRole, PaperAccount, PaperEquityPoint
from graduation.trading import accounts
from tests.factories import make_agent

# Where crafted champion / challenger records begin (daily points from here).
T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
# Metrics (per fold and on the sealed test window) that pass the lab's default criteria comfortably.
GOOD = {"win_rate": 0.6, "sharpe": 1.2, "total_return": 0.1, "num_trades": 12.0, "max_drawdown": 0.1, "psr": 0.9}
# The statistics of a version that passes: deflated Sharpe, PBO, and a sealed window long enough
# for its minimum track record (per-bar Sharpe 0.1 over 200 bars).
GOOD_EVIDENCE = {"dsr": 0.99, "pbo": 0.1}
GOOD_STATS = {"test_sharpe": 0.1, "test_skew": 0.0, "test_kurtosis": 3.0, "test_bars": 200, "test_trades": 12}
# Small criteria so a few iterations make an agent eligible.
QUICK = {"min_iterations": 3}
# A paper record on a random walk passes these: for tests of the mechanics of moving to live, not of
# the paper evidence (PSR and the minimum track record are tested in test_eligibility).
PAPER_LENIENT = {"max_drawdown": 1.0, "min_total_return": -1.0, "min_paper_psr": 0.0,
                 "paper_track_record_confidence": None}


def add_iteration(agent, metrics=None, *, status=IterationStatus.SUCCEEDED, finished_at=None, evidence=None,
                  stats=None, **overrides):
    """A finished iteration of the current version with the given metrics on every fold and on the
    sealed test window (a succeeded one carries the protocol's evidence)."""
    number = (LearningIteration.objects.filter(agent=agent).order_by("-number").values_list("number", flat=True)
              .first() or 0) + 1
    ok = status == IterationStatus.SUCCEEDED
    measured = {**GOOD, **(metrics or {}), **overrides} if ok else {}
    return LearningIteration.objects.create(
        agent=agent, number=number, status=status, version=agent.current_version,
        validation_metrics=measured, fold_metrics=[measured] * 5 if ok else [],
        train_metrics={**measured, "num_trades": measured.get("num_trades", 0) * 5} if ok else {},
        score=1.0, selection_score=1.0 if ok else None, n_trials=number * 4,
        evidence={**GOOD_STATS, **(stats or {})} if ok else {},
        windows={"test": {"start": "2011-01-01T00:00:00", "end": "2011-10-01T00:00:00", "bars": 200}} if ok else {},
        finished_at=finished_at or timezone.now(), **({**GOOD_EVIDENCE, **(evidence or {})} if ok else {}),
    )


def eligible_agent(criteria=None, iterations=3, **kwargs):
    agent = make_agent(**kwargs)
    agent.graduation_criteria = {**QUICK, **(criteria or {})}
    agent.save(update_fields=["graduation_criteria"])
    for _ in range(iterations):
        add_iteration(agent)
    return agent


def paper_agent(criteria=None, **kwargs):
    """An agent graduated to paper trading by its owner (flat account on the newest bar)."""
    agent = eligible_agent(criteria, **kwargs)
    services.agent_graduate(agent, actor=agent.owner, reason="looks good")
    agent.refresh_from_db()
    return agent


def append_bars(instrument, n, *, seed=7, drift=0.0, vol=0.02, start=None, last_close=None):
    """Append n daily bars after the instrument's newest one (a random walk), as an import would."""
    last = PriceBar.objects.filter(instrument=instrument).order_by("-timestamp").first()
    start = start or (last.timestamp + dt.timedelta(days=1))
    price = last_close or (last.close if last else 100.0)
    rng = np.random.default_rng(seed)
    close = price * np.exp(np.cumsum(rng.normal(drift, vol, n)))
    open_ = np.concatenate([[price], close[:-1]]) * (1 + rng.normal(0, vol / 4, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, vol / 2, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, vol / 2, n)))
    PriceBar.objects.bulk_create([
        PriceBar(instrument=instrument, timestamp=start + dt.timedelta(days=i), open=o, high=h, low=lo, close=c,
                 volume=1000)
        for i, (o, h, lo, c) in enumerate(zip(open_, high, low, close, strict=True))
    ])
    mark_bars_changed(instrument.pk)


def crafted(champion_returns, challenger_returns, *, live=False, **agent_kwargs):
    """A paper (or live) agent whose champion and shadow accounts hold exactly these per-bar returns
    on the same daily bars from T0 (no tick involved)."""
    agent = paper_agent({"max_drawdown": 1.0}, params={"fast": 3, "slow": 8}, **agent_kwargs)
    v1 = agent.current_version
    v2 = StrategyVersion.objects.create(agent=agent, number=2, params={**v1.params, "fast": 4}, parent=v1,
                                        origin=VersionOrigin.REFINEMENT)
    agent.current_version = v2
    agent.status = AgentStatus.LIVE_TRADING if live else agent.status
    agent.save(update_fields=["current_version", "status"])
    champion = accounts.open_account_of(agent)
    PaperAccount.objects.filter(pk=champion.pk).update(live=live)
    PaperEquityPoint.objects.filter(account=champion).delete()
    with transaction.atomic():
        shadow = accounts.open_account(agent, v2, snapshot=(T0, 0.0), role=AccountRole.CHALLENGER, like=champion)
    for account, returns, first in ((champion, champion_returns, 0), (shadow, challenger_returns, 1)):
        equity = account.initial_capital * np.concatenate([[1.0], np.cumprod(1.0 + np.asarray(returns))])
        PaperEquityPoint.objects.bulk_create([
            PaperEquityPoint(account=account, timestamp=T0 + dt.timedelta(days=i), equity=float(e), position=0.0,
                             target=0.0) for i, e in enumerate(equity) if i >= first
        ])
    agent.refresh_from_db()
    return agent, champion, shadow


def correlated(seed, n, edge):
    """Two return series sharing a common factor; the challenger has ``edge`` more mean per bar."""
    rng = np.random.default_rng(seed)
    market = rng.normal(0.0, 0.01, n)
    return market + rng.normal(0.0, 0.004, n), market + rng.normal(edge, 0.004, n)
