import pytest
from tests.console.conftest import CHROMIUM, PASSWORD, eligible_agent, raise_alert, staff_user
from tests.factories import make_agent

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_review(page, live_server, instrument, artifacts):
    from agents.services import learning, continuous
    from graduation.services import graduate
    op = staff_user("operator")
    agent = make_agent(owner=op, instrument=instrument, name="Console trend")
    for _ in range(4):
        learning.iteration_run_now(agent, trigger="manual")
    continuous.continuous_start(agent, actor=op)
    raise_alert(agent, "Validation Sharpe fell 40% below its average", severity="CRITICAL")
    raise_alert(agent, "Another thing")
    p = eligible_agent(op, instrument, name="Paper one")
    graduate(p, actor=op, reason="ok")
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", "operator"); page.fill("#id_password", PASSWORD); page.click("input[type=submit]")
    for a, name in ((agent, "a"), (p, "p")):
        page.goto(f"/admin/agents/tradingagent/{a.pk}/change/")
        h = page.evaluate("document.body.scrollHeight")
        y = 0; i = 0
        while y < h and i < 6:
            page.screenshot(path=str(artifacts / f"review-{name}-{i}.png"), full_page=True,
                            clip={"x": 0, "y": y, "width": 1440, "height": 900})
            y += 900; i += 1
