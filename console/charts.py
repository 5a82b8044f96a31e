"""Line charts as inline SVG, drawn on the server: no JavaScript, nothing fetched at run time.

A chart is a few series of (x, y) points on shared axes; x is a datetime or a number (an
iteration). The y axis gets "nice" ticks (1, 2, 2.5 or 5 times a power of ten) with grid lines,
the x axis dated or numbered ticks. Hovering a column of the plot shows an SVG ``<title>``: the
x value and every series' value there (the point of each series nearest in x). Long series are
thinned to MAX_POINTS for drawing; hover columns are at most MAX_HOVER.
"""

import bisect
import datetime as dt
import math
from dataclasses import dataclass, field

from django.utils.html import escape
from django.utils.safestring import mark_safe

PALETTE = ("#2f6fb0", "#c8702a", "#3a8f55", "#a33a3a", "#6c4fa3")
MAX_POINTS = 600
MAX_HOVER = 90
MARGIN = {"left": 72, "right": 18, "top": 30, "bottom": 34}


@dataclass
class Series:
    name: str
    xs: list
    ys: list
    color: str | None = None
    dashed: bool = False
    markers: bool = False
    points: list = field(default_factory=list, init=False)


def nice_step(span, count):
    raw = span / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def nice_ticks(low, high, count=5):
    """Round tick values covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0]
    if high - low < 1e-12:
        pad = abs(high) * 0.05 or 1.0
        low, high = low - pad, high + pad
    step = nice_step(high - low, count)
    start = math.floor(low / step) * step
    ticks, value = [], start
    while value < high + step * 0.999 and len(ticks) < 20:
        ticks.append(round(value, 12))
        value += step
    return ticks


def format_value(value, kind="number"):
    """A y value as people read it: money with separators, fractions as percentages."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if kind == "money":
        return f"{value:,.0f}"
    if kind == "percent":
        return f"{value * 100:.1f}%"
    if kind == "int":
        return f"{value:.0f}"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if magnitude >= 0.1 or value == 0 else f"{value:.3g}"


def _x_number(x):
    if isinstance(x, dt.datetime):
        return x.timestamp()
    if isinstance(x, dt.date):
        return dt.datetime.combine(x, dt.time.min, tzinfo=dt.UTC).timestamp()
    return float(x)


def _x_label(value, kind, span):
    if kind != "date":
        return f"{value:g}" if value != int(value) else f"{int(value)}"
    moment = dt.datetime.fromtimestamp(value, tz=dt.UTC)
    if span > 3 * 365 * 86400:
        return moment.strftime("%Y")
    if span > 120 * 86400:
        return moment.strftime("%b %Y")
    if span > 2 * 86400:
        return moment.strftime("%d %b")
    return moment.strftime("%d %b %H:%M")


def _hover_x(value, kind):
    if kind != "date":
        return f"#{int(value)}" if value == int(value) else f"{value:g}"
    moment = dt.datetime.fromtimestamp(value, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d") if moment.time() == dt.time.min else moment.strftime("%Y-%m-%d %H:%M UTC")


def _x_ticks(low, high, kind):
    if kind != "date":
        step = max(1.0, nice_step(max(high - low, 1.0), 6))
        first = math.ceil(low / step) * step
        return [first + i * step for i in range(int((high - first) / step) + 1)]
    return _date_ticks(low, high)


def _date_ticks(low, high, count=6):
    """Calendar-aligned ticks: new years, first days of months, or midnights."""
    start, end = (dt.datetime.fromtimestamp(v, tz=dt.UTC) for v in (low, high))
    span = high - low
    if span > 3 * 365 * 86400:
        step = max(1, math.ceil((end.year - start.year) / count))
        moments = [dt.datetime(y, 1, 1, tzinfo=dt.UTC) for y in range(start.year, end.year + 1, step)]
    elif span > 120 * 86400:
        months = (end.year - start.year) * 12 + end.month - start.month
        step = next(s for s in (1, 2, 3, 4, 6, 12) if months / s <= count)
        first = start.year * 12 + start.month - 1
        moments = [dt.datetime(m // 12, m % 12 + 1, 1, tzinfo=dt.UTC) for m in range(first, first + months + 1, step)]
    elif span > 2 * 86400:
        step = dt.timedelta(days=max(1, math.ceil(span / 86400 / count)))
        day = dt.datetime.combine(start.date(), dt.time.min, tzinfo=dt.UTC)
        moments = [day + i * step for i in range(count + 2)]
    else:
        return [low + (high - low) * i / 5 for i in range(6)] if high > low else [low]
    return [m.timestamp() for m in moments if low <= m.timestamp() <= high]


# Tick labels are 11px text (styles.html) in the SVG's own units: at most this wide per character
# (digits and capitals of the admin's sans-serif fonts), and kept at least LABEL_GAP apart.
LABEL_CHAR_WIDTH = 7.0
LABEL_GAP = 10.0


def x_tick_labels(ticks, px, left, plot_w, kind, span):
    """[(x, text-anchor, label)] of the x ticks whose labels fit: a label that would overlap the
    previous kept one is dropped with its tick, and labels near an edge are anchored inwards."""
    kept, right_edge = [], -math.inf
    for tick in ticks:
        x = px(tick)
        label = _x_label(tick, kind, span)
        width = len(label) * LABEL_CHAR_WIDTH
        if x - left < width / 2:
            anchor, start = "start", x
        elif left + plot_w - x < width / 2:
            anchor, start = "end", x - width
        else:
            anchor, start = "middle", x - width / 2
        if start < right_edge + LABEL_GAP:
            continue
        kept.append((x, anchor, label))
        right_edge = start + width
    return kept


def _thin(points):
    if len(points) <= MAX_POINTS:
        return points
    step = len(points) / MAX_POINTS
    kept = [points[int(i * step)] for i in range(MAX_POINTS)]
    return [*kept, points[-1]] if kept[-1] is not points[-1] else kept


def _nearest(series, x):
    keys = [p[0] for p in series.points]
    i = bisect.bisect_left(keys, x)
    candidates = [j for j in (i - 1, i) if 0 <= j < len(keys)]
    j = min(candidates, key=lambda k: abs(keys[k] - x))
    return series.points[j][1]


def line_chart(series, *, title, x_kind="date", y_format="number", y_label="", x_label="", width=760,
               height=250, empty="No data yet."):
    """The SVG markup (safe) of a line chart, or a short note when no series has a point."""
    series = [s for s in series if s is not None]
    for index, s in enumerate(series):
        s.color = s.color or PALETTE[index % len(PALETTE)]
        s.points = sorted(
            (_x_number(x), float(y)) for x, y in zip(s.xs, s.ys, strict=True)
            if y is not None and math.isfinite(float(y))
        )
    drawn = [s for s in series if s.points]
    if not drawn:
        return mark_safe(f'<p class="lab-chart-empty">{escape(title)}: {escape(empty)}</p>')  # noqa: S308

    xs = [p[0] for s in drawn for p in s.points]
    ys = [p[1] for s in drawn for p in s.points]
    x_low, x_high = min(xs), max(xs)
    if x_high == x_low:
        pad = 86400 if x_kind == "date" else 1
        x_low, x_high = x_low - pad, x_high + pad
    ticks = nice_ticks(min(ys), max(ys))
    y_low, y_high = min(ticks[0], min(ys)), max(ticks[-1], max(ys))
    left, top = MARGIN["left"], MARGIN["top"]
    plot_w = width - left - MARGIN["right"]
    plot_h = height - top - MARGIN["bottom"]

    def px(x):
        return left + (x - x_low) / (x_high - x_low) * plot_w

    def py(y):
        return top + plot_h - (y - y_low) / ((y_high - y_low) or 1.0) * plot_h

    out = [
        f'<svg class="lab-chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" class="lab-plot"/>',
    ]
    for tick in ticks:
        y = py(tick)
        cls = "lab-zero" if abs(tick) < 1e-12 and y_low < 0 < y_high else "lab-grid"
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="{cls}"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" class="lab-tick" text-anchor="end">'
                   f"{escape(format_value(tick, y_format))}</text>")
    for x, anchor, label in x_tick_labels(_x_ticks(x_low, x_high, x_kind), px, left, plot_w, x_kind,
                                          x_high - x_low):
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" class="lab-axis"/>')
        out.append(f'<text x="{x:.1f}" y="{top + plot_h + 17}" class="lab-tick" text-anchor="{anchor}">'
                   f"{escape(label)}</text>")
    if y_label:
        out.append(f'<text transform="translate(14 {top + plot_h / 2:.0f}) rotate(-90)" class="lab-axis-label" '
                   f'text-anchor="middle">{escape(y_label)}</text>')
    if x_label:
        out.append(f'<text x="{left + plot_w / 2:.0f}" y="{height - 3}" class="lab-axis-label" '
                   f'text-anchor="middle">{escape(x_label)}</text>')

    for s in drawn:
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in _thin(s.points))
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        out.append(f'<polyline points="{path}" fill="none" stroke="{s.color}" stroke-width="2"{dash}/>')
        if s.markers:
            for x, y in s.points[-MAX_POINTS:]:
                out.append(
                    f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{s.color}"><title>'
                    f"{escape(s.name)} {escape(_hover_x(x, x_kind))}: {escape(format_value(y, y_format))}"
                    "</title></circle>"
                )

    # Legend along the top.
    cursor = left
    for s in drawn:
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        out.append(f'<line x1="{cursor}" x2="{cursor + 22}" y1="14" y2="14" stroke="{s.color}" '
                   f'stroke-width="3"{dash}/>')
        out.append(f'<text x="{cursor + 28}" y="18" class="lab-legend">{escape(s.name)}</text>')
        cursor += 40 + 7 * len(s.name)

    out.extend(_hover_columns(drawn, px, left, top, plot_w, plot_h, x_kind, y_format))
    out.append("</svg>")
    return mark_safe("".join(out))  # noqa: S308 - every text above is escaped


def _hover_columns(drawn, px, left, top, plot_w, plot_h, x_kind, y_format):
    """Transparent columns over the plot, each with a <title> of the values at its x."""
    base = max(drawn, key=lambda s: len(s.points))
    keys = [p[0] for p in base.points]
    if len(keys) > MAX_HOVER:
        step = len(keys) / MAX_HOVER
        keys = [keys[int(i * step)] for i in range(MAX_HOVER)] + [keys[-1]]
    positions = [px(k) for k in keys]
    out = []
    for i, key in enumerate(keys):
        x0 = left if i == 0 else (positions[i - 1] + positions[i]) / 2
        x1 = left + plot_w if i == len(keys) - 1 else (positions[i] + positions[i + 1]) / 2
        if x1 - x0 < 0.5:
            continue
        values = "; ".join(f"{s.name} {format_value(_nearest(s, key), y_format)}" for s in drawn)
        out.append(
            f'<rect x="{x0:.1f}" y="{top}" width="{x1 - x0:.1f}" height="{plot_h}" class="lab-hover">'
            f"<title>{escape(_hover_x(key, x_kind))}: {escape(values)}</title></rect>"
        )
    return out


def sparkline(values, *, width=160, height=34, label="equity"):
    """A small inline SVG line of ``values`` (no axes; the first and last values in its ``<title>``),
    for a table cell: the leaderboard's equity per entrant. A short note when fewer than two points."""
    ys = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if len(ys) < 2:
        return mark_safe('<span class="lab-spark-empty">-</span>')
    low, high = min(ys), max(ys)
    span = (high - low) or 1.0
    step = (width - 4) / (len(ys) - 1)
    points = " ".join(f"{2 + i * step:.1f},{2 + (height - 4) * (1 - (y - low) / span):.1f}" for i, y in enumerate(ys))
    color = PALETTE[2] if ys[-1] >= ys[0] else PALETTE[3]
    title = escape(f"{label}: {format_value(ys[0])} -> {format_value(ys[-1])} ({len(ys)} points)")
    return mark_safe(  # noqa: S308 - every value is a number formatted here, the title escaped
        f'<svg class="lab-spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
        f"<title>{title}</title>"
        f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{points}"/></svg>'
    )
