"""Small charts as inline SVG, drawn on the server: no script, no external asset, and allowed by
the pages' Content-Security-Policy (presentation attributes, no inline style). Every text in a
chart (labels, tooltips) is escaped."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup

Day = tuple[str, int]  # (label, count)


def sparkline(days: Sequence[Day], width: int = 140, height: int = 28) -> Markup:
    """A line over the counts, a dot on the last day; the title gives the total and each day."""
    counts = [count for _, count in days]
    top = max(counts, default=0) or 1
    step = width / max(len(counts) - 1, 1)
    points = [(round(i * step, 1), round(height - 2 - (height - 4) * c / top, 1))
              for i, c in enumerate(counts)]
    line = " ".join(f"{x},{y}" for x, y in points)
    last = (Markup('<circle cx="{}" cy="{}" r="2" class="spark-dot"/>').format(*points[-1])
            if points else Markup(""))
    title = f"{sum(counts)} in {len(counts)} days: " + ", ".join(f"{d} {c}" for d, c in days)
    return Markup(
        '<svg class="sparkline" role="img" width="{w}" height="{h}" viewBox="0 0 {w} {h}"'
        ' xmlns="http://www.w3.org/2000/svg"><title>{title}</title>'
        '<polyline points="{line}" fill="none" class="spark-line"/>{last}</svg>'
    ).format(w=width, h=height, title=title, line=line, last=last)


def bar_chart(days: Sequence[Day], width: int = 280, height: int = 60) -> Markup:
    """One bar per day, its count and day in the bar's title; the first and last day below."""
    counts = [count for _, count in days]
    top = max(counts, default=0) or 1
    chart = height - 14  # room for the labels under the bars
    slot = width / max(len(days), 1)
    bars = []
    for i, (day, count) in enumerate(days):
        bar = round(chart * count / top, 1) if count else 0
        bars.append(Markup(
            '<rect x="{x}" y="{y}" width="{w}" height="{h}" class="bar"><title>{t}</title></rect>'
        ).format(x=round(i * slot + 1, 1), y=round(chart - bar, 1), w=round(max(slot - 2, 1), 1),
                 h=bar, t=f"{day}: {count}"))
    labels = Markup("")
    if days:
        labels = Markup(
            '<text x="0" y="{y}" class="axis">{first}</text>'
            '<text x="{w}" y="{y}" text-anchor="end" class="axis">{last}</text>'
        ).format(y=height - 2, w=width, first=days[0][0], last=days[-1][0])
    title = f"{sum(counts)} in {len(days)} days"
    return Markup(
        '<svg class="bars" role="img" width="{w}" height="{h}" viewBox="0 0 {w} {h}"'
        ' xmlns="http://www.w3.org/2000/svg"><title>{title}</title>'
        '<line x1="0" y1="{base}" x2="{w}" y2="{base}" class="baseline"/>{bars}{labels}</svg>'
    ).format(w=width, h=height, title=title, base=chart, bars=Markup("").join(bars), labels=labels)

