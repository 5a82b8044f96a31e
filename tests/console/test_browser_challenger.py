"""The champion / challenger panel in a real browser (headless Chromium, as tests/console/test_browser.py):
the paired test's figures and verdict, the two curves, a person promoting a live agent's challenger,
another dismissing a paper agent's. A screenshot goes to test-artifacts/console-challenger.png."""

import pytest

from graduation.models import EventKind, GraduationEvent
from tests.console.browser import expect, log_in
from tests.console.helpers import staff_user
from tests.graduation.helpers import correlated, crafted

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_person_promotes_a_live_challenger_and_dismisses_a_paper_one(page, live_server, artifacts):
    boss = staff_user("boss", live=True)
    live, _champion, _shadow = crafted(*correlated(0, 120, 0.004), live=True, owner=boss, name="Live A/B")
    paper, _paper_champion, _paper_shadow = crafted(*correlated(2, 40, 0.004), owner=boss, name="Paper A/B")
    log_in(page, "boss")

    page.goto(f"/admin/agents/tradingagent/{live.pk}/change/")
    panel = page.locator("#challenger-panel")
    expect(panel).to_have_attribute("data-state", "ready")
    expect(page.locator("#challenger-test")).to_contain_text("T (common bars) 120")
    expect(page.locator("#challenger-test")).to_contain_text("level 0.05")
    expect(page.locator("#challenger-verdict-text")).to_contain_text("waiting for a person")
    chart = page.locator("#challenger-chart svg.lab-chart")
    expect(chart).to_be_visible()
    expect(page.locator("#challenger-chart")).to_contain_text("challenger v2")
    panel.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "console-challenger.png"), full_page=True)
    page.click('[data-testid="challenger-promote"]')
    expect(page.locator("ul.messagelist")).to_contain_text("Re-pinned to v2")
    expect(page.locator("#challenger-none")).to_be_visible()
    assert GraduationEvent.objects.get(agent=live, kind=EventKind.REPIN).actor_id == boss.pk

    page.goto(f"/admin/agents/tradingagent/{paper.pk}/change/")
    expect(page.locator("#challenger-panel")).to_have_attribute("data-state", "collecting")
    expect(page.locator('[data-testid="challenger-promote"]')).to_have_count(0)
    dismiss = page.locator('form:has([data-testid="challenger-dismiss"])')
    dismiss.locator('input[name="reason"]').fill("no edge after the fees")
    dismiss.locator('[data-testid="challenger-dismiss"]').click()
    expect(page.locator("ul.messagelist")).to_contain_text("Challenger v2 dismissed")
    expect(page.locator("#challenger-none")).to_be_visible()
