"""Cron and time zone edges (issue 17): 7 is Sunday, as in most crons; zones that are no place's
time ('localtime' follows the host, 'Factory' is a placeholder) are refused by name."""

import datetime as dt

import pytest
from django_celery_beat.models import PeriodicTask
from rest_framework.test import APIClient

from agents.models import TradingAgent
from agents.services import scheduling
from agents.services.scheduling.cron import next_fire_time, parse_cron
from core.errors import ValidationFailed
from tests.factories import make_agent

pytestmark = pytest.mark.django_db

SUNDAY = dt.datetime(2026, 1, 4, 9, 0, tzinfo=dt.UTC)  # a Sunday


@pytest.mark.parametrize(
    ("written", "stored"),
    [("* * * * 7", "* * * * 0"), ("0 9 * * 7", "0 9 * * 0"), ("0 9 * * 5-7", "0 9 * * 0,5-6"),
     ("0 9 * * 1,7", "0 9 * * 0-1"), ("0 9 * * 0-7", "0 9 * * *"), ("0 9 * * sat-7", "0 9 * * 0,6"),
     ("0 9 * * 1-7/2", "0 9 * * 0-1,3,5"), ("0 9 * * mon-fri", "0 9 * * mon-fri")],
)
def test_seven_is_sunday_and_is_stored_as_zero(written, stored):
    assert parse_cron(written).expression == stored


def test_a_sunday_cron_written_with_seven_fires_on_sunday():
    assert next_fire_time("0 9 * * 7", after=SUNDAY - dt.timedelta(days=3)) == SUNDAY


def test_the_api_accepts_seven_and_beat_gets_zero():
    agent = make_agent()
    client = APIClient()
    client.force_authenticate(agent.owner)
    resp = client.put(f"/api/learning-agents/{agent.pk}/schedule", {"cron": "30 6 * * 7", "timezone": "UTC"},
                      format="json")
    assert resp.status_code == 200, resp.content
    scheduling.auto_learn_enable(TradingAgent.objects.get(pk=agent.pk), actor=agent.owner)
    row = PeriodicTask.objects.get(name=f"agent:{agent.pk}:learn")
    assert row.crontab.day_of_week == "0"
    assert TradingAgent.objects.get(pk=agent.pk).learning_schedule == "30 6 * * 0"


@pytest.mark.parametrize("bad", ["* * * * 8", "* * * * 7-8", "* * * * */8"])
def test_days_beyond_seven_are_still_refused(bad):
    with pytest.raises(ValidationFailed) as caught:
        parse_cron(bad)
    assert list(caught.value.errors) == ["cron"] and "day_of_week" in caught.value.errors["cron"]


@pytest.mark.parametrize("zone", ["localtime", "Factory", "factory", "posixrules"])
def test_zones_that_are_no_place_are_refused_naming_timezone(zone):
    agent = make_agent()
    client = APIClient()
    client.force_authenticate(agent.owner)
    before = TradingAgent.objects.filter(pk=agent.pk).values("learning_schedule", "schedule_timezone").get()
    resp = client.put(f"/api/learning-agents/{agent.pk}/schedule", {"cron": "0 9 * * 1", "timezone": zone},
                      format="json")
    assert resp.status_code == 400 and list(resp.json()) == ["timezone"], resp.content
    assert "not a place's time zone" in resp.json()["timezone"][0]
    assert TradingAgent.objects.filter(pk=agent.pk).values("learning_schedule", "schedule_timezone").get() == before


def test_real_zones_still_work():
    assert parse_cron("0 9 * * 1", "europe/london").timezone == "Europe/London"
    assert parse_cron("0 9 * * 1", "UTC").timezone == "UTC"
