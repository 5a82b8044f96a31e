"""The tournament leaderboard in a real browser (headless Chromium via Playwright, as
tests/console/test_browser.py). A screenshot is saved to test-artifacts/leaderboard.png."""

import pytest
from django.contrib.auth.models import Permission

from tests.console.browser import expect, log_in
from tests.factories import UserFactory
from tests.tournaments.helpers import entrants, tournament_of
from tournaments.models import TournamentRound, TournamentStanding
from tournaments.services.standings import standings_recompute

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_an_operator_reads_the_leaderboard_and_starts_a_round(page, live_server, artifacts):
    coach = UserFactory(username="coach", is_staff=True)
    coach.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["agents", "tournaments"]))
    owner, agents = entrants(owner=coach)
    tournament = standings_recompute(tournament_of(owner, agents, name="Browser cup").pk)
    ranked = list(TournamentStanding.objects.filter(tournament=tournament).order_by("rank"))

    log_in(page, "coach", next_url="/admin/tournaments/tournament/", landed="#result_list")
    expect(page.locator("#result_list")).to_contain_text("Browser cup")
    expect(page.locator("#result_list")).to_contain_text(ranked[0].agent.name)  # the leader column

    page.click("text=Browser cup")
    board = page.locator("#leaderboard")
    expect(board).to_be_visible()
    expect(board.locator("tbody tr")).to_have_count(3)
    for row in ranked:
        line = board.locator(f'tr[data-rank="{row.rank}"]')
        expect(line).to_contain_text(row.agent.name)
        expect(line.locator("svg.lab-spark")).to_be_visible()
    expect(page.locator("#figure-dsr")).to_contain_text(f"{tournament.summary['deflated_sharpe']:.4f}")
    expect(page.locator("#figure-p-noise")).to_contain_text(f"{tournament.summary['edge']['p_value']:.4f}")
    page.screenshot(path=str(artifacts / "leaderboard.png"), full_page=True)

    # The leader's name leads to its agent page.
    board.locator('tr[data-rank="1"] a').click()
    expect(page.locator("#lab-console")).to_be_visible()

    # A round from the changelist: one iteration per entrant queued.
    page.goto("/admin/tournaments/tournament/")
    page.check(f'input[name="_selected_action"][value="{tournament.pk}"]')
    page.select_option('select[name="action"]', "run_round_now")
    page.click('button[name="index"]')
    expect(page.locator("ul.messagelist")).to_contain_text("round 1 started")
    assert TournamentRound.objects.get(tournament=tournament).iteration_ids
