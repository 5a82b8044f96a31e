"""Champion / challenger API: both accounts, the test's state, promote and dismiss, owner scoping."""

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from graduation.models import AccountRole, EventKind, GraduationEvent, PaperAccount
from tests.factories import UserFactory
from tests.graduation.helpers import correlated, crafted

pytestmark = pytest.mark.django_db


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def url(agent, path):
    return f"/api/learning-agents/{agent.pk}/{path}"


@pytest.mark.parametrize("slash", ["", "/"])
def test_both_accounts_and_the_state(slash):
    agent, champion, shadow = crafted(*correlated(2, 40, 0.004))
    client = client_for(agent.owner)
    body = client.get(url(agent, "paper/accounts") + slash, {"points": 10}).json()
    assert body["champion"]["account"]["id"] == champion.pk and body["champion"]["account"]["role"] == "champion"
    assert body["challenger"]["account"]["id"] == shadow.pk and body["challenger"]["account"]["role"] == "challenger"
    assert body["challenger"]["account"]["version"] == 2 and len(body["challenger"]["equity"]) == 10
    assert client.get(url(agent, "paper") + slash).json()["account"]["id"] == champion.pk  # the champion
    state = client.get(url(agent, "challenger") + slash).json()
    assert state["state"] == "collecting" and state["bars"] == 40 and state["level"] == 0.05
    assert state["challenger"]["id"] == shadow.pk and "40 common bars" in state["verdict"]
    assert {"z", "p_value", "rho", "min_trl", "sr_challenger", "sr_champion", "start", "end"} <= set(state)
    assert client.get(url(agent, "paper/accounts"), {"points": 0}).status_code == 400


def test_promote_is_409_until_ready_and_dismiss_needs_a_reason():
    agent, _champion, shadow = crafted(*correlated(2, 40, 0.004))
    client = client_for(agent.owner)
    resp = client.post(url(agent, "challenger/promote"), {}, format="json")
    assert resp.status_code == 409 and "not ready" in str(resp.json())
    resp = client.post(url(agent, "challenger/promote"), {"force": True}, format="json")
    assert resp.status_code == 400 and "force" in resp.json()
    resp = client.post(url(agent, "challenger/dismiss"), {}, format="json")
    assert resp.status_code == 400 and "reason" in resp.json()
    resp = client.post(url(agent, "challenger/dismiss"), {"reason": "not convincing"}, format="json")
    assert resp.status_code == 200 and resp.json()["id"] == shadow.pk and resp.json()["closed_at"]
    assert client.get(url(agent, "challenger")).json()["state"] == "none"
    assert client.post(url(agent, "challenger/dismiss"), {"reason": "x"}, format="json").status_code == 409


def test_promoting_a_live_challenger_needs_the_permission():
    agent, champion, _shadow = crafted(*correlated(0, 120, 0.004), live=True)
    assert client_for(agent.owner).get(url(agent, "challenger")).json()["needs_person"] is True
    resp = client_for(agent.owner).post(url(agent, "challenger/promote"), {}, format="json")
    assert resp.status_code == 403 and "approve_live_trading" in str(resp.json())
    agent.owner.user_permissions.add(Permission.objects.get(codename="approve_live_trading"))
    person = type(agent.owner).objects.get(pk=agent.owner.pk)  # fresh permission cache
    resp = client_for(person).post(url(agent, "challenger/promote"), {}, format="json")
    assert resp.status_code == 201, resp.content
    assert resp.json()["kind"] == "repin" and resp.json()["metrics_snapshot"]["evidence"]["bars"] == 120
    assert GraduationEvent.objects.get(agent=agent, kind=EventKind.REPIN).actor == person
    assert PaperAccount.objects.get(pk=champion.pk).version.number == 2
    assert not PaperAccount.objects.filter(agent=agent, role=AccountRole.CHALLENGER, closed_at__isnull=True).exists()


def test_another_owners_agent_is_a_404():
    agent, _champion, _shadow = crafted(*correlated(0, 120, 0.004))
    stranger = client_for(UserFactory())
    for path in ("paper/accounts", "challenger"):
        assert stranger.get(url(agent, path)).status_code == 404
    for path in ("challenger/promote", "challenger/dismiss"):
        assert stranger.post(url(agent, path), {"reason": "x"}, format="json").status_code == 404
    assert PaperAccount.objects.filter(agent=agent, closed_at__isnull=True).count() == 2
