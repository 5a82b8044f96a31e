"""The console's agent page of an ensemble: its members, read-only; its settings still editable."""

import pytest

from agents.models import StrategyVersion, TradingAgent
from agents.strategies.registry import get_template
from tests.console.test_agent_admin import form_data
from tests.factories import InstrumentFactory, UserFactory, make_agent, random_walk_bars

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    user = UserFactory(username="op", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


def test_the_page_lists_the_members_and_whether_they_moved_on(client, operator):
    instrument = random_walk_bars(InstrumentFactory(), n=300)
    members = [make_agent(owner=operator, instrument=instrument, name=f"member {i}", params={"fast": 3 + i})
               for i in range(2)]
    agent = make_agent(owner=operator, instrument=instrument, template="ensemble", name="blend",
                       members=[str(m.pk) for m in members])
    page = client.get(f"/admin/agents/tradingagent/{agent.pk}/change/").content.decode()
    assert 'data-testid="ensemble-members"' in page
    assert "member 0" in page and "member 1" in page and page.count("up to date (v1)") == 2

    moved = members[1]
    moved.current_version = StrategyVersion.objects.create(
        agent=moved, number=2, origin="manual",
        params=get_template("sma_crossover").validate({**moved.current_version.params, "fast": 9}))
    moved.save(update_fields=["current_version"])
    page = client.get(f"/admin/agents/tradingagent/{agent.pk}/change/").content.decode()
    assert page.count("up to date (v1)") == 1 and "member has a newer version" in page

    # A plain agent has no members panel; the add form offers no ensemble (it needs members).
    assert 'data-testid="ensemble-members"' not in client.get(
        f"/admin/agents/tradingagent/{members[0].pk}/change/").content.decode()
    assert 'value="ensemble"' not in client.get("/admin/agents/tradingagent/add/").content.decode()


def test_an_ensembles_settings_are_edited_through_the_form(client, operator):
    instrument = random_walk_bars(InstrumentFactory(), n=300)
    members = [make_agent(owner=operator, instrument=instrument, params={"fast": 3 + i}) for i in range(2)]
    agent = make_agent(owner=operator, instrument=instrument, template="ensemble", name="blend",
                       members=[str(m.pk) for m in members])
    data = form_data(instrument, owner=operator.pk, name="blend renamed", strategy_template="ensemble",
                     params="{}")
    resp = client.post(f"/admin/agents/tradingagent/{agent.pk}/change/", data)
    assert resp.status_code == 302, resp.content.decode()[-3000:]
    agent = TradingAgent.objects.get(pk=agent.pk)
    assert agent.name == "blend renamed" and agent.strategy_template == "ensemble"
    assert len(agent.current_version.params["members"]) == 2
