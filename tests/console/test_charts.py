"""Server-side SVG charts: axes, hover titles, escaping, thinning, odd data."""

import datetime as dt
import itertools
import math
import re

import pytest

from console import charts
from console.charts import MAX_HOVER, MAX_POINTS, Series, format_value, line_chart, nice_ticks


def days(n, start=dt.datetime(2024, 1, 1, tzinfo=dt.UTC)):
    return [start + dt.timedelta(days=i) for i in range(n)]


def test_nice_ticks_cover_the_range_with_round_steps():
    assert nice_ticks(0.13, 0.92) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(98_000, 131_000) == [90_000.0, 100_000.0, 110_000.0, 120_000.0, 130_000.0, 140_000.0]
    flat = nice_ticks(5.0, 5.0)
    assert flat[0] < 5.0 < flat[-1]
    assert nice_ticks(-0.4, 1.3)[0] <= -0.4


def test_format_value():
    assert format_value(123456.7, "money") == "123,457"
    assert format_value(0.4567, "percent") == "45.7%"
    assert format_value(12.0, "int") == "12"
    assert format_value(None) == "n/a" and format_value(math.nan) == "n/a"
    assert format_value(0.5123) == "0.51" and format_value(0.0123) == "0.0123"


def test_a_dated_chart_has_axes_legend_and_hover_titles():
    dates = days(120)
    svg = str(line_chart([Series("v3", dates, [100_000 + 100 * i for i in range(120)]),
                          Series("buy and hold", dates, [100_000 + 50 * i for i in range(120)], dashed=True)],
                         title="Equity", y_format="money", y_label="equity"))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<title>Equity</title>" in svg
    assert ">v3</text>" in svg and ">buy and hold</text>" in svg
    assert "stroke-dasharray" in svg
    assert "<title>2024-01-01: v3 100,000; buy and hold 100,000</title>" in svg
    assert "110,000" in svg  # a y tick
    assert re.findall(r'class="lab-tick" text-anchor="\w+">(\d\d \w{3})<', svg)[:2] == ["01 Jan", "21 Jan"]
    assert svg.count('class="lab-hover"') <= MAX_HOVER + 1


def test_per_iteration_chart_marks_each_point():
    svg = str(line_chart([Series("score", [1, 2, 3], [0.2, -0.1, 0.5], markers=True)], title="Score",
                         x_kind="number", x_label="iteration"))
    assert svg.count("<circle") == 3
    assert "<title>score #2: -0.10</title>" in svg
    assert 'class="lab-zero"' in svg  # the axis crosses 0
    assert ">iteration</text>" in svg


def test_text_is_escaped():
    svg = str(line_chart([Series("<script>", [1, 2], [1, 2])], title="a <b> & c", x_kind="number"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "a &lt;b&gt; &amp; c" in svg


def test_no_data_and_odd_values():
    assert "No data yet." in str(line_chart([Series("s", [], [])], title="Nothing"))
    only_nan = line_chart([Series("s", [1, 2], [math.nan, None])], title="NaN", x_kind="number")
    assert "lab-chart-empty" in str(only_nan)
    single = str(line_chart([Series("s", [dt.datetime(2024, 5, 1, tzinfo=dt.UTC)], [3.0])], title="One"))
    assert "<polyline" in single and "nan" not in single.lower().replace("lab-", "")


def test_long_series_are_thinned_for_drawing():
    n = 5000
    svg = str(line_chart([Series("long", days(n), [float(i) for i in range(n)])], title="Long"))
    points = re.search(r'<polyline points="([^"]+)"', svg).group(1).split()
    assert len(points) <= MAX_POINTS + 1
    assert "<title>2024-01-01:" in svg  # the first bar keeps its hover


def test_date_ticks_fall_on_calendar_boundaries():
    six_years = str(line_chart([Series("s", days(6 * 365, dt.datetime(2013, 1, 2, tzinfo=dt.UTC)),
                                       [1.0] * (6 * 365))], title="Years"))
    assert re.findall(r'text-anchor="\w+">(\d{4})<', six_years) == ["2014", "2015", "2016", "2017", "2018"]
    months = str(line_chart([Series("s", days(150, dt.datetime(2010, 12, 20, tzinfo=dt.UTC)), [1.0] * 150)],
                            title="Months"))
    assert re.findall(r'text-anchor="\w+">(\w{3} \d{4})<', months) == ["Jan 2011", "Feb 2011", "Mar 2011",
                                                                         "Apr 2011", "May 2011"]


@pytest.mark.parametrize("hours", [2, 20, 47, 49, 24 * 9, 24 * 119, 24 * 121, 24 * 800, 24 * 365 * 3 + 48,
                                   24 * 365 * 20])
@pytest.mark.parametrize("width", [560, 760])
def test_x_tick_labels_never_overlap_and_stay_inside(hours, width):
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    xs = [start + dt.timedelta(hours=h) for h in range(0, hours + 1, max(1, hours // 300))]
    svg = str(charts.line_chart([charts.Series("equity", xs, list(range(len(xs))))], title="t", width=width))
    boxes = []
    axis_y = 250 - charts.MARGIN["bottom"] + 17
    for match in re.finditer(r'<text x="([0-9.]+)" y="([0-9.]+)" class="lab-tick" text-anchor="(\w+)">([^<]+)<', svg):
        x, y, anchor, label = float(match[1]), float(match[2]), match[3], match[4]
        if y != axis_y:
            continue  # a y tick
        w = len(label) * charts.LABEL_CHAR_WIDTH
        start_x = {"start": x, "middle": x - w / 2, "end": x - w}[anchor]
        boxes.append((start_x, start_x + w))
    x_boxes = boxes
    assert len(x_boxes) >= 2
    for (_, right), (left, _) in itertools.pairwise(sorted(x_boxes)):
        assert left >= right + charts.LABEL_GAP
    assert all(a >= 0 and b <= width for a, b in x_boxes)
