"""The agent page's champion / challenger panel (server-rendered): the test's figures, the two
curves, promote (live: the permission) and dismiss through the console's controls."""

import pytest
from django.urls import reverse

from graduation.models import AccountRole, EventKind, GraduationEvent, PaperAccount
from tests.console.helpers import staff_user
from tests.graduation.helpers import correlated, crafted

pytestmark = pytest.mark.django_db


def page(agent):
    return reverse("admin:agents_tradingagent_change", args=[agent.pk])


def control(agent, name):
    return reverse("admin:agents_tradingagent_control", args=[agent.pk, name])


def messages_of(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_the_panel_shows_the_test_and_both_curves(client):
    operator = staff_user("operator")
    agent, _champion, shadow = crafted(*correlated(2, 40, 0.004), owner=operator)
    client.force_login(operator)
    html = client.get(page(agent)).content.decode()
    assert 'id="challenger-panel" data-state="collecting"' in html
    assert f"shadow paper account {shadow.pk}" in html and "v2 challenges the traded v1" in html
    assert "T (common bars) <b>40</b>" in html and "level <b>0.05</b>" in html
    assert "40 common bars &lt; max(MinTRL" in html
    chart = html[html.index('id="challenger-chart"'):]
    assert "champion v1" in chart and "challenger v2" in chart and "<svg" in chart
    assert 'data-testid="challenger-promote"' not in html  # a paper agent's challenger is promoted by the tick


def test_a_live_promotion_without_the_permission_is_refused_then_a_dismissal(client):
    operator = staff_user("operator")
    agent, champion, shadow = crafted(*correlated(0, 120, 0.004), live=True, owner=operator)
    client.force_login(operator)
    html = client.get(page(agent)).content.decode()
    assert 'data-state="ready"' in html and "waiting for a person" in html
    assert "needs the graduation.approve_live_trading permission" in html
    response = client.post(control(agent, "challenger-promote"), follow=True)
    assert any("approve_live_trading" in m for m in messages_of(response))
    assert not GraduationEvent.objects.filter(agent=agent, kind=EventKind.REPIN).exists()
    response = client.post(control(agent, "challenger-dismiss"), {"reason": ""}, follow=True)
    assert any(m.startswith("reason: required") for m in messages_of(response))
    response = client.post(control(agent, "challenger-dismiss"), {"reason": "not now"}, follow=True)
    assert any("Challenger v2 dismissed" in m for m in messages_of(response))
    assert PaperAccount.objects.get(pk=shadow.pk).closed_at is not None
    assert PaperAccount.objects.get(pk=champion.pk).version.number == 1


def test_a_person_with_the_permission_promotes_a_live_challenger(client):
    boss = staff_user("boss", live=True)
    agent, champion, _shadow = crafted(*correlated(0, 120, 0.004), live=True, owner=boss)
    client.force_login(boss)
    response = client.post(control(agent, "challenger-promote"), follow=True)
    assert any(m.startswith("Re-pinned to v2") for m in messages_of(response))
    assert PaperAccount.objects.get(pk=champion.pk).version.number == 2
    assert not PaperAccount.objects.filter(agent=agent, role=AccountRole.CHALLENGER, closed_at__isnull=True).exists()
