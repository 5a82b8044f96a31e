"""In a real browser: the Import bars page (preview, errors, import) and the paper-equity chart's
x axis, whose labels must never overlap, over a short and a long paper period."""

import datetime as dt
import itertools

import pytest

from tests.console.browser import expect, log_in
from tests.console.helpers import staff_user
from tests.graduation.helpers import eligible_agent as evidenced_agent

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FRED = "DATE,DCOILWTICO\n2030-01-02,61.10\n2030-01-03,.\n2030-01-06,62.00\n2030-01-07,-1\n"


def test_an_operator_previews_fixes_and_imports_a_fred_file(page, live_server, tmp_path, settings, artifacts):
    from agents.market.models import Instrument, PriceBar

    settings.VAR_DIR = tmp_path
    staff_user("operator")
    wti = Instrument.objects.create(symbol="WTI", name="WTI crude", has_intrabar_range=False)
    path = tmp_path / "wti.csv"
    path.write_text(FRED)
    log_in(page, "operator")
    page.goto(f"/admin/agents/instrument/{wti.pk}/change/")
    page.click("a.lab-import-bars")
    page.set_input_files("#id_file", str(path))
    page.click("button[value=preview]")
    preview = page.locator("#lab-import-preview")
    expect(preview).to_contain_text("The file cannot be imported: nothing will be written")
    expect(preview).to_contain_text("line 1: the file has one value column ('DCOILWTICO')")
    expect(page.locator("button[value=import]")).to_have_count(0)

    page.check("#id_close_only")
    page.click("button[value=preview]")
    expect(preview).to_contain_text("line 3: column 'DCOILWTICO (close)': missing value")
    expect(preview).to_contain_text("line 5: close must be positive (got -1)")
    expect(preview).to_contain_text("cannot trade through such a price")

    page.select_option("#id_missing", "skip")
    page.select_option("#id_non_positive", "skip")
    page.click("button[value=preview]")
    expect(preview).to_contain_text("Preview: 2 bars from 4 rows")
    expect(preview.locator("table.lab-preview tbody tr")).to_have_count(2)
    page.screenshot(path=str(artifacts / "console-import-preview.png"), full_page=True)
    page.click("button[value=import]")
    expect(page.locator("ul.messagelist")).to_contain_text("WTI: 2 bars read: 2 created")
    assert PriceBar.objects.filter(instrument=wti).count() == 2


def _paper_account(operator, instrument, *, step, count):
    from graduation.models import PaperEquityPoint
    from graduation.services import agent_graduate

    agent = evidenced_agent(owner=operator, instrument=instrument, name=f"Paper {count}x{step}")
    agent_graduate(agent, actor=operator, reason="chart test")
    account = agent.paper_accounts.get(closed_at__isnull=True)
    start = account.opened_bar_timestamp
    PaperEquityPoint.objects.filter(account=account).delete()
    PaperEquityPoint.objects.bulk_create(
        [PaperEquityPoint(account=account, timestamp=start + i * step, equity=100_000 + 50 * i, position=0.0,
                          target=0.0) for i in range(count)]
    )
    return agent


@pytest.mark.parametrize("step, count", [(dt.timedelta(hours=1), 30), (dt.timedelta(days=1), 6 * 365)],
                         ids=["short-period", "long-period"])
def test_the_paper_equity_x_axis_labels_never_overlap(page, live_server, instrument, step, count, artifacts):
    operator = staff_user("operator")
    agent = _paper_account(operator, instrument, step=step, count=count)
    log_in(page, "operator")
    for width in (1440, 900):
        page.set_viewport_size({"width": width, "height": 1000})
        page.goto(f"/admin/agents/tradingagent/{agent.pk}/change/")
        chart = page.locator("#paper svg.lab-chart")
        expect(chart).to_be_visible()
        boxes = chart.evaluate("""svg => {
            const ticks = [...svg.querySelectorAll('text.lab-tick')];
            const ys = ticks.map(t => t.getAttribute('y'));
            const axisY = ys.sort((a, b) => b - a)[0];
            return ticks.filter(t => t.getAttribute('y') === axisY).map(t => {
                const r = t.getBoundingClientRect(); return [r.left, r.right, t.textContent];
            }).sort((a, b) => a[0] - b[0]);
        }""")
        assert len(boxes) >= 2, boxes
        for (_, right, a), (left, _, b) in itertools.pairwise(boxes):
            assert left > right, f"x labels {a!r} and {b!r} overlap at width {width}: {boxes}"
        svg_box = chart.bounding_box()
        assert boxes[0][0] >= svg_box["x"] - 0.5 and boxes[-1][1] <= svg_box["x"] + svg_box["width"] + 0.5
    page.screenshot(path=str(artifacts / f"console-paper-axis-{count}.png"), full_page=True)
