"""Factories for the suite. Agents are made through the service, as users make them."""

import datetime as dt
import itertools

import factory
import numpy as np
from django.contrib.auth import get_user_model

from agents.market.cache import mark_bars_changed
from agents.market.models import Instrument, PriceBar

_agent_numbers = itertools.count(1)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests-1")


class InstrumentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Instrument
        django_get_or_create = ("symbol",)

    symbol = factory.Sequence(lambda n: f"SYN{n}")
    name = "Synthetic random walk"
    bar_interval = "1d"
    bars_per_year = 252


def random_walk_bars(instrument, n=600, seed=1, start=dt.datetime(2010, 1, 4, tzinfo=dt.UTC), drift=0.0003,
                     vol=0.012):
    """Add n daily bars of a geometric random walk (with intraday range) to the instrument."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(drift, vol, n)))
    open_ = np.concatenate([[100.0], close[:-1]]) * (1 + rng.normal(0, vol / 4, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, vol / 2, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, vol / 2, n)))
    PriceBar.objects.bulk_create(
        [
            PriceBar(instrument=instrument, timestamp=start + dt.timedelta(days=i), open=o, high=h, low=lo,
                     close=c, volume=1000)
            for i, (o, h, lo, c) in enumerate(zip(open_, high, low, close, strict=True))
        ]
    )
    mark_bars_changed(instrument.pk)
    instrument.refresh_from_db()
    return instrument


def make_agent(owner=None, instrument=None, template="sma_crossover", params=None, **settings_values):
    from agents.services.agents import agent_create

    owner = owner or UserFactory()
    if instrument is None:
        instrument = random_walk_bars(InstrumentFactory())
    settings_values.setdefault("refiner", "optuna")
    settings_values.setdefault("candidates_per_iteration", 4)
    return agent_create(
        owner=owner,
        name=settings_values.pop("name", f"agent-{next(_agent_numbers)}-{template}"),
        instrument=instrument,
        strategy_template=template,
        params=params or {},
        **settings_values,
    )


def make_claude_agent_without_key(settings, **settings_values):
    """A Claude agent made while an API key was set, the key since removed: its iterations fail.
    (A new Claude agent is refused without a key; one that exists keeps working until it runs.)"""
    settings.ANTHROPIC_API_KEY = "sk-ant-since-removed"
    agent = make_agent(refiner="claude", **settings_values)
    settings.ANTHROPIC_API_KEY = ""
    return agent
