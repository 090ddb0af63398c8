"""Inline SVG charts (no JavaScript): sparklines, bar charts and line charts, with text alternatives."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape


def _scale(values: Sequence[float], height: float) -> list[float]:
    top = max(values, default=0) or 1
    return [height - (v / top) * height for v in values]


def sparkline(values: Sequence[float], label: str, width: int = 120, height: int = 24) -> Markup:
    """A small line of values (e.g. events per minute), labelled for screen readers."""
    if not values:
        return Markup("")
    step = width / max(1, len(values) - 1)
    ys = _scale(values, height - 2)
    points = " ".join(f"{i * step:.1f},{y + 1:.1f}" for i, y in enumerate(ys))
    return Markup(f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
                  f'role="img" aria-label="{escape(label)}"><polyline fill="none" points="{points}"/></svg>')


def bars(values: Sequence[float], labels: Sequence[str], title: str, width: int = 640, height: int = 160,
         css: str = "bars") -> Markup:
    """A bar per bucket; every bar has a <title> tooltip with its label and value."""
    if not values:
        return Markup(f'<p class="muted">{escape(title)}: no data yet</p>')
    gap, base = 1, height - 16
    bar = max(1.0, width / len(values) - gap)
    ys = _scale(values, base - 4)
    rects = "".join(
        f'<rect x="{i * (bar + gap):.1f}" y="{y + 4:.1f}" width="{bar:.1f}" height="{base - 4 - y:.1f}">'
        f"<title>{escape(label)}: {value:g}</title></rect>"
        for i, (y, value, label) in enumerate(zip(ys, values, labels, strict=True)))
    axis = (f'<text x="0" y="{height - 2}">{escape(labels[0])}</text>'
            f'<text x="{width}" y="{height - 2}" text-anchor="end">{escape(labels[-1])}</text>')
    top = f'<text x="0" y="12">max {max(values):g}</text>'
    return Markup(f'<svg class="{css}" viewBox="0 0 {width} {height}" preserveAspectRatio="none" role="img" '
                  f'aria-label="{escape(title)}">{rects}{axis}{top}</svg>')


def line_chart(values: Sequence[float], labels: Sequence[str], title: str, unit: str = "",
               width: int = 640, height: int = 160) -> Markup:
    """A line over time (e.g. failure rate in %)."""
    if not values:
        return Markup(f'<p class="muted">{escape(title)}: no data yet</p>')
    base = height - 16
    step = width / max(1, len(values) - 1)
    ys = _scale(values, base - 16)
    points = " ".join(f"{i * step:.1f},{y + 16:.1f}" for i, y in enumerate(ys))
    dots = "".join(f'<circle cx="{i * step:.1f}" cy="{y + 16:.1f}" r="2"><title>{escape(label)}: '
                   f"{value:.1f}{unit}</title></circle>"
                   for i, (y, value, label) in enumerate(zip(ys, values, labels, strict=True)))
    axis = (f'<text x="0" y="{height - 2}">{escape(labels[0])}</text>'
            f'<text x="{width}" y="{height - 2}" text-anchor="end">{escape(labels[-1])}</text>'
            f'<text x="0" y="12">max {max(values):.1f}{unit}</text>')
    return Markup(f'<svg class="line" viewBox="0 0 {width} {height}" preserveAspectRatio="none" role="img" '
                  f'aria-label="{escape(title)}"><polyline fill="none" points="{points}"/>{dots}{axis}</svg>')
