"""The console's Jinja2 environment: autoescaped templates from ui/templates, a few filters."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from trailseal.ui import charts

TEMPLATES = Path(__file__).resolve().parent / "templates"


@functools.cache
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pretty=lambda value: json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False),
                       short_time=short_time)
    env.globals.update(sparkline=charts.sparkline, bars=charts.bars, line_chart=charts.line_chart)
    return env


def render(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)


def short_time(stamp: str | None) -> str:
    """'2026-11-27T10:00:00.123456Z' -> '2026-11-27 10:00:00'."""
    return stamp[:19].replace("T", " ") if stamp else "-"
