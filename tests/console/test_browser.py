"""The operator console in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by
Playwright against the live test server. Skipped, saying why, where no Chromium is installed.

Screenshots of the dashboard and the agent page are saved to test-artifacts/.
"""

import re

import pytest

from tests.console.browser import expect, log_in
from tests.console.helpers import eligible_agent, open_alert, staff_user
from tests.factories import make_agent

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def tile(page, section, label):
    return page.locator(f'#{section} a.lab-tile[data-label="{label}"] .lab-tile-value')


def messages(page):
    return page.locator("ul.messagelist")


def test_an_operator_runs_the_lab_from_the_console(page, live_server, instrument, artifacts):
    operator = staff_user("operator")
    agent = make_agent(owner=operator, instrument=instrument, name="Console trend")
    graduate_me = eligible_agent(operator, instrument, name="Ready for paper")
    alert = open_alert(agent, message="Validation Sharpe fell 40% below its 3-iteration average")

    # The dashboard: every number links to its list.
    log_in(page, "operator")
    expect(tile(page, "dash-statuses", "all agents")).to_have_text("2")
    expect(tile(page, "dash-statuses", "learning")).to_have_text("2")
    expect(tile(page, "dash-statuses", "paper trading")).to_have_text("0")
    expect(tile(page, "dash-alerts", "unacknowledged")).to_have_text("1")
    expect(page.locator("#dash-newest-alerts")).to_contain_text("Validation Sharpe fell")
    # What each learning agent lacks for paper trading, on the lab's own criteria.
    expect(page.locator(f'#dash-readiness tr[data-agent="{graduate_me.pk}"]')).to_contain_text("eligible")
    expect(page.locator(f'#dash-readiness tr[data-agent="{agent.pk}"]')).to_contain_text(
        "min_iterations 0 (needs 10)")
    page.click('#dash-statuses a.lab-tile[data-label="learning"]')
    expect(page.locator("#result_list")).to_contain_text("Console trend")
    expect(page).to_have_url(re.compile(r"status__exact=learning"))

    # The agent page: run an iteration inline and watch it finish.
    page.click("text=Console trend")
    expect(page.locator("#lab-console")).to_be_visible()
    expect(page.locator("#iterations")).to_contain_text("No iteration yet")
    page.click('[data-testid="run-inline"]')
    expect(messages(page)).to_contain_text("Iteration #1 succeeded", timeout=60_000)
    expect(page.locator('#iteration-table tr[data-iteration="1"]')).to_contain_text("succeeded")
    expect(page.locator("#lab-console svg.lab-chart").first).to_be_visible()

    # Approve a refinement, then apply it: v2 becomes the current version.
    first = page.locator("#refinements [data-refinement]").first
    refinement_id = first.get_attribute("data-refinement")
    first.locator('[data-testid="approve"]').click()
    expect(messages(page)).to_contain_text(f"Refinement {refinement_id} approved")
    page.locator(f'#refinement-{refinement_id} [data-testid="apply"]').click()
    expect(messages(page)).to_contain_text(f"Refinement {refinement_id} applied: v2 is now the current version")
    expect(page.locator('#versions tr[data-version="2"]')).to_contain_text("current")

    # A bad cron: the API's message, nothing changes; a good one: the next run.
    page.fill("#id_console_cron", "0 25 * * *")
    page.click('[data-testid="save-schedule-enable"]')
    expect(messages(page)).to_contain_text("cron: field 2 (hour) '25' is out of range 0-23")
    expect(page.locator("#cron-error")).to_contain_text("out of range 0-23")
    expect(page.locator("#auto-learn-state")).to_have_text("off")
    page.fill("#id_console_cron", "0 */6 * * *")
    page.click('[data-testid="save-schedule-enable"]')
    expect(messages(page)).to_contain_text("next run")
    expect(page.locator("#auto-learn-state")).to_have_text("on")
    expect(page.locator("#schedule-description")).to_contain_text("6 hours")
    expect(page.locator("#next-run")).to_contain_text(re.compile(r"\d{4}-\d\d-\d\d \d\d:00"))

    # Acknowledge the alert.
    page.locator(f'#alerts li[data-alert="{alert.pk}"] [data-testid="acknowledge"]').click()
    expect(messages(page)).to_contain_text(f"Alert {alert.pk} acknowledged.")
    expect(page.locator(f'#alerts li[data-alert="{alert.pk}"]')).to_have_count(0)
    page.locator("#summary").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "console-agent-page.png"), full_page=True)

    # Graduate the eligible agent to paper trading.
    page.goto(f"/admin/agents/tradingagent/{graduate_me.pk}/change/")
    expect(page.locator("#eligibility-verdict")).to_have_text("eligible")
    page.click('[data-testid="graduate"]')
    expect(messages(page)).to_contain_text("Graduated to paper trading")
    expect(page.locator("#agent-status")).to_have_text("Paper trading")
    expect(page.locator("#paper")).to_contain_text("Paper account")

    # Going live needs the permission: the confirmation page refuses this operator.
    with page.expect_navigation() as navigation:
        page.click('[data-testid="go-live"]')
    assert navigation.value.status == 403
    expect(page.locator("#go-live-refused")).to_contain_text(
        "moving an agent to live trading needs the graduation.approve_live_trading permission")
    expect(page.locator("#go-live-form")).to_have_count(0)
    graduate_me.refresh_from_db()
    assert graduate_me.status == "paper_trading"

    # Back on the dashboard the lab has moved.
    page.goto("/admin/")
    expect(tile(page, "dash-statuses", "paper trading")).to_have_text("1")
    expect(page.locator("#dash-graduations")).to_contain_text("Ready for paper")
    page.screenshot(path=str(artifacts / "console-dashboard.png"), full_page=True)


def test_an_operator_with_the_permission_sees_the_confirmation_form(page, live_server, instrument, artifacts):
    from graduation.services import agent_graduate

    boss = staff_user("boss", live=True)
    agent = eligible_agent(boss, instrument, name="Paper star")
    agent_graduate(agent, actor=boss, reason="good record")
    log_in(page, "boss")
    page.goto(f"/admin/agents/tradingagent/{agent.pk}/console/go-live/")
    expect(page.locator("#go-live-form")).to_be_visible()
    page.click('[data-testid="confirm-go-live"]')
    expect(messages(page)).to_contain_text("confirm: must be true")
    expect(messages(page)).to_contain_text("reason: required")
    page.fill("#id_reason", "strong paper record")
    page.check("#id_confirm")
    page.click('[data-testid="confirm-go-live"]')
    # A fresh paper account has no record yet: the service lists the failed criteria.
    expect(messages(page)).to_contain_text("eligibility: not eligible for live_trading: paper_bars: 0")
    page.screenshot(path=str(artifacts / "console-go-live.png"), full_page=True)


def test_the_agent_page_follows_a_queued_iteration_until_a_worker_finishes_it(page, live_server, instrument,
                                                                              monkeypatch):
    from agents.tasks import run_iteration_task

    sent = []
    monkeypatch.setattr("config.task_messages.send", lambda name, *args: sent.append((name, *args)))
    operator = staff_user("operator")
    agent = make_agent(owner=operator, instrument=instrument, name="Queued")
    log_in(page, "operator")
    page.goto(f"/admin/agents/tradingagent/{agent.pk}/change/")
    page.click('[data-testid="run-queued"]')
    expect(messages(page)).to_contain_text("Iteration #1 queued for a worker.")
    expect(page.locator("#active-iteration")).to_contain_text("Iteration #1 is queued")
    assert sent == [(run_iteration_task.name, agent.iterations.get().pk)]
    # The worker's turn (what the task does); the page notices by itself and reloads.
    run_iteration_task(sent[0][1])
    expect(page.locator('#iteration-table tr[data-iteration="1"]')).to_contain_text("succeeded", timeout=20_000)
    expect(page.locator("#active-iteration")).to_have_count(0)
