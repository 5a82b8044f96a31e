"""The admin index dashboard and the agent changelist: numbers, links, scoping, bounded queries."""

import re
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from agents.models import ContinuousState, IterationStatus, LearningIteration, TradingAgent
from agents.services import continuous, dispatch
from console.readiness import learning_readiness
from tests.console.helpers import add_iteration, eligible_agent, open_alert
from tests.factories import UserFactory, make_agent

pytestmark = pytest.mark.django_db


def tiles(html, section):
    """{label: (value, url)} of one dashboard section; a section in which no tile matches is a failure,
    so a change of markup cannot turn the tests that loop over the tiles into tests of nothing."""
    assert f'id="{section}"' in html, f"no dashboard section {section!r}"
    block = html.split(f'id="{section}"', 1)[1].split("</div>", 1)[0]
    found = re.findall(r'<a class="lab-tile[^"]*" href="([^"]+)" data-label="([^"]+)">'
                       r'<span class="lab-tile-value">(\d+)</span>', block)
    assert found, f"no tile found in dashboard section {section!r}: has the tile markup changed?"
    return {label: (int(value), url.replace("&amp;", "&")) for url, label, value in found}


@pytest.fixture
def lab(operator, other_owner, instrument):
    from graduation.services import agent_graduate

    mine = make_agent(owner=operator, instrument=instrument, name="mine")
    capped = make_agent(owner=operator, instrument=instrument, name="capped")
    paper = eligible_agent(operator, instrument, name="paper")
    agent_graduate(paper, actor=operator, reason="ready")
    theirs = make_agent(owner=other_owner, instrument=instrument, name="theirs")
    continuous.continuous_start(mine, actor=operator)
    TradingAgent.objects.filter(pk=capped.pk).update(continuous_learning_enabled=True,
                                                     continuous_state=ContinuousState.CAPPED)
    dispatch.iteration_queue(mine, trigger="manual")
    LearningIteration.objects.filter(agent=mine).update(status=IterationStatus.RUNNING)
    add_iteration(capped, status=IterationStatus.FAILED, validation_metrics={})
    open_alert(mine, message="critical thing", severity="CRITICAL")
    open_alert(capped, message="a warning")
    open_alert(theirs, message="not yours")
    return {"mine": mine, "capped": capped, "paper": paper, "theirs": theirs}


def test_dashboard_numbers_are_scoped_to_the_owner(client, operator, lab):
    client.force_login(operator)
    html = client.get("/admin/").content.decode()
    statuses = tiles(html, "dash-statuses")
    assert statuses["all agents"][0] == 3 and statuses["paper trading"][0] == 1 and statuses["learning"][0] == 2
    assert statuses["paper trading"][1] == "/admin/agents/tradingagent/?status__exact=paper_trading"
    learning_tiles = tiles(html, "dash-learning")
    assert learning_tiles["learning continuously"][0] == 2
    assert learning_tiles["running now"][0] == 1 and learning_tiles["capped for today"][0] == 1
    assert learning_tiles["converged"][0] == 0
    iterations = tiles(html, "dash-iterations")
    assert iterations["running now"][0] == 1 and iterations["failed today"][0] == 1
    # Three good ones of the paper agent (made today) plus the two above.
    assert iterations["today"][0] == 5
    alerts = tiles(html, "dash-alerts")
    assert alerts["unacknowledged"][0] == 2 and alerts["critical"][0] == 1 and alerts["warning"][0] == 1
    assert "not yours" not in html
    newest = html.split('id="dash-newest-alerts"', 1)[1]
    assert newest.index("a warning") < newest.index("critical thing")  # newest first
    assert "Recent graduations" in html and "Lab health" in html


# The tiles test_dashboard_numbers_are_scoped_to_the_owner reads by name: the link test must reach each.
NAMED_TILES = {
    ("dash-statuses", "all agents"), ("dash-statuses", "paper trading"), ("dash-statuses", "learning"),
    ("dash-learning", "learning continuously"), ("dash-learning", "running now"),
    ("dash-learning", "capped for today"), ("dash-learning", "converged"),
    ("dash-iterations", "running now"), ("dash-iterations", "failed today"), ("dash-iterations", "today"),
    ("dash-alerts", "unacknowledged"), ("dash-alerts", "critical"), ("dash-alerts", "warning"),
}


def test_every_dashboard_number_links_to_a_list_with_that_many_rows(client, operator, lab):
    client.force_login(operator)
    html = client.get("/admin/").content.decode()
    checked = set()
    for section in ("dash-statuses", "dash-learning", "dash-iterations", "dash-alerts"):
        for label, (value, url) in tiles(html, section).items():
            response = client.get(url)
            assert response.status_code == 200, (label, url)
            assert response.context["cl"].result_count == value, (section, label, url)
            checked.add((section, label))
    assert not NAMED_TILES - checked, f"tiles the link test never reached: {NAMED_TILES - checked}"


def test_superuser_sees_the_whole_lab(client, lab):
    boss = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(boss)
    html = client.get("/admin/").content.decode()
    assert tiles(html, "dash-statuses")["all agents"][0] == 4
    assert tiles(html, "dash-alerts")["unacknowledged"][0] == 3


def test_dashboard_queries_do_not_grow_with_the_lab(client, operator, instrument, monkeypatch):
    # The readiness table judges each of the first READINESS_AGENTS learning agents: bounded, not
    # constant, so past that bound nothing grows.
    monkeypatch.setattr("console.readiness.READINESS_AGENTS", 2)
    client.force_login(operator)

    def count():
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/admin/").status_code == 200
        return len(queries)

    for n in range(2):
        agent = make_agent(owner=operator, instrument=instrument, name=f"a{n}")
        open_alert(agent)
        add_iteration(agent)
    small = count()
    for n in range(2, 8):
        agent = make_agent(owner=operator, instrument=instrument, name=f"a{n}")
        open_alert(agent)
        add_iteration(agent)
    assert count() == small
    assert len(learning_readiness(operator)) == 2


def readiness_rows(html):
    """{agent name: the 'lacks' cell} of the dashboard's readiness table."""
    block = html.split('id="dash-readiness"', 1)[1].split("</table>", 1)[0]
    found = re.findall(r'<tr data-agent="[^"]+">\s*<td><a href="[^"]+">([^<]+)</a></td>\s*<td class="num">(.*?)</td>'
                       r'\s*<td class="small">(.*?)</td>', block, re.S)
    return {name: (headline.strip(), unescape(lacks.strip())) for name, headline, lacks in found}


def test_the_dashboard_says_what_each_learning_agent_lacks(client, operator, other_owner, instrument):
    from graduation.services import agent_graduate

    eligible_agent(operator, instrument, name="ready")
    overfit = eligible_agent(operator, instrument, name="overfit")
    add_iteration(overfit, {"sharpe": 0.2}, dsr=0.4, pbo=0.8, score=0.123)
    make_agent(owner=operator, instrument=instrument, name="fresh")
    trading = eligible_agent(operator, instrument, name="trading")
    agent_graduate(trading, actor=operator, reason="ready")
    make_agent(owner=other_owner, instrument=instrument, name="theirs")
    client.force_login(operator)
    html = client.get("/admin/").content.decode()
    assert "what each lacks for paper trading" in html
    found = readiness_rows(html)
    assert set(found) == {"ready", "overfit", "fresh"}  # learning agents only, the owner's only
    assert found["ready"] == ("1.000", '<span class="lab-badge pass">eligible</span>')
    headline, lacks = found["overfit"]
    assert headline == "0.123"  # the headline is the sealed-test objective of the latest evaluation
    assert lacks == ("min_sharpe_ratio (0/5 folds, sealed test 0.2; needs 0.5); min_dsr 0.4 (needs 0.95); "
                     "max_pbo 0.8 (needs 0.5)")
    headline, lacks = found["fresh"]
    assert "not examined" in headline  # no iteration has evaluated it: no headline is invented
    assert lacks == ("min_iterations 0 (needs 10); "  # the lab's default: nothing lowered for show
                     "evidence none (needs an iteration that evaluated the current version)")
    rows = {r["agent"].name: r for r in learning_readiness(operator)}
    assert rows["ready"]["eligible"] and not rows["overfit"]["eligible"] and not rows["fresh"]["eligible"]


def test_changelist_columns_without_n_plus_one(client, operator, instrument):
    client.force_login(operator)

    def count():
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/admin/agents/tradingagent/")
        return len(queries), response

    for n in range(2):
        open_alert(make_agent(owner=operator, instrument=instrument, name=f"b{n}"))
    small, _ = count()
    for n in range(2, 9):
        agent = make_agent(owner=operator, instrument=instrument, name=f"b{n}")
        open_alert(agent)
        add_iteration(agent, score=0.777)
    large, response = count()
    assert large == small
    html = response.content.decode()
    assert "0.777" in html and "acknowledged__exact=0" in html


def test_changelist_filter_by_open_alerts(client, operator, instrument):
    client.force_login(operator)
    noisy = make_agent(owner=operator, instrument=instrument, name="noisy")
    make_agent(owner=operator, instrument=instrument, name="quiet")
    open_alert(noisy)
    response = client.get("/admin/agents/tradingagent/?open_alerts=yes")
    assert [a.name for a in response.context["cl"].result_list] == ["noisy"]
    response = client.get("/admin/agents/tradingagent/?open_alerts=no")
    assert [a.name for a in response.context["cl"].result_list] == ["quiet"]


def test_actions_report_each_row(client, operator, instrument, django_capture_on_commit_callbacks):
    client.force_login(operator)
    busy = make_agent(owner=operator, instrument=instrument, name="busy")
    idle = make_agent(owner=operator, instrument=instrument, name="idle")
    dispatch.iteration_queue(busy, trigger="manual")
    open_alert(idle)
    changelist = "/admin/agents/tradingagent/"

    def act(action):
        with django_capture_on_commit_callbacks(execute=False):
            response = client.post(changelist, {"action": action, "_selected_action": [busy.pk, idle.pk]},
                                   follow=True)
        return sorted(str(m) for m in response.context["messages"])

    assert act("run_iteration_now") == ["busy: iteration: #1 is already queued", "idle: iteration #1 queued"]
    assert act("enable_auto_learn") == ["busy: learning_schedule: set a schedule first (a five-field cron)",
                                        "idle: learning_schedule: set a schedule first (a five-field cron)"]
    assert act("start_continuous") == ["busy: continuous learning on (running)",
                                       "idle: continuous learning on (running)"]
    assert act("stop_continuous") == ["busy: continuous learning stopped", "idle: continuous learning stopped"]
    assert act("acknowledge_alerts") == ["busy: 0 alerts acknowledged", "idle: 1 alert acknowledged"]
    assert act("apply_approved_refinements") == [
        "busy: refinements: there is no approved refinement to apply",
        "idle: refinements: there is no approved refinement to apply",
    ]


def test_agent_page_renders_for_every_status(client, operator, instrument):
    from graduation.services import agent_graduate

    client.force_login(operator)
    agent = eligible_agent(operator, instrument)
    url = reverse("admin:agents_tradingagent_change", args=[agent.pk])
    html = client.get(url).content.decode()
    assert "Graduate to paper trading" in html and "eligible" in html
    agent_graduate(agent, actor=operator, reason="ready")
    html = client.get(url).content.decode()
    assert "Go live" in html and "needs the graduation.approve_live_trading permission" in html
    assert "Demote to learning" in html and "Paper account" in html
