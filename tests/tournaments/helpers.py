"""Shared helpers of the tournament tests: entrants on crafted bars, a crafted forward record."""

import datetime as dt

from graduation.models import PaperEquityPoint
from graduation.trading.accounts import open_account
from tests.factories import InstrumentFactory, UserFactory, make_agent, random_walk_bars
from tournaments.services.tournaments import tournament_create

START = dt.datetime(2010, 1, 4, tzinfo=dt.UTC)


def two_instruments(n=400):
    """Two instruments of n daily bars on the same dates (different walks)."""
    a = random_walk_bars(InstrumentFactory(symbol="TOURA"), n=n, seed=11, drift=0.0004)
    b = random_walk_bars(InstrumentFactory(symbol="TOURB"), n=n, seed=12, drift=-0.0002)
    return a, b


def entrants(owner=None, n=400):
    """Three entrants: two SMA crossovers on TOURA (default, and 3/12 long-short), one on TOURB."""
    owner = owner or UserFactory(username="coach")
    a, b = two_instruments(n)
    return owner, [
        make_agent(owner=owner, instrument=a, name="A default"),
        make_agent(owner=owner, instrument=a, name="A fast", params={"fast": 3, "slow": 12, "long_only": False}),
        make_agent(owner=owner, instrument=b, name="B default"),
    ]


def tournament_of(owner, agents, **kwargs):
    kwargs.setdefault("name", "Cup")
    return tournament_create(owner, agent_ids=[getattr(a, "pk", a) for a in agents], **kwargs)


def forward_record(agent, returns, *, after):
    """An open paper account of ``agent`` whose equity earns ``returns`` on daily bars after ``after``."""
    account = open_account(agent, agent.current_version, snapshot=(after, 0.0))
    equity, points = account.initial_capital, []
    for i, r in enumerate(returns, start=1):
        equity *= 1.0 + r
        points.append(PaperEquityPoint(account=account, timestamp=after + dt.timedelta(days=i), equity=equity,
                                       position=1.0, target=1.0))
    PaperEquityPoint.objects.bulk_create(points)
    return account
