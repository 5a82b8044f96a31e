"""Plain-text tables for the terminal: columns sized to their content, numbers right-aligned."""


def fmt(value, digits=3):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def _numeric(text):
    try:
        float(text.rstrip("%"))
    except ValueError:
        return False
    return True


def render(header, rows, *, empty="(none)", max_width=60):
    """The table as lines; cells are fmt()-ed and cut at max_width characters."""
    if not rows:
        return [empty]
    cells = [[fmt(c) for c in row] for row in rows]
    cells = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in row] for row in cells]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    right = [all(_numeric(r[i]) or r[i] == "-" for r in cells) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    for row in cells:
        lines.append("  ".join((c.rjust(w) if r else c.ljust(w)) for c, w, r in zip(row, widths, right, strict=True))
                     .rstrip())
    return lines
