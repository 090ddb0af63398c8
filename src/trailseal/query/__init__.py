"""Reading: the query language, search with cursors, timelines (see language.py and search.py).

The names below load on first use, so a module of this package (an export worker, say) imports
without the query engine. The search function is ``trailseal.query.search.search``: once loaded,
``trailseal.query.search`` is its module.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Page", "QueryError", "count", "explain", "format", "matches", "parse", "predicate", "timeline"]
_FROM = {"QueryError": "language", "format": "language", "matches": "language", "parse": "language",
         "predicate": "language", "Page": "search", "count": "search", "explain": "search",
         "timeline": "search"}


def __getattr__(name: str) -> Any:
    if name in _FROM:
        return getattr(importlib.import_module(f"trailseal.query.{_FROM[name]}"), name)
    raise AttributeError(f"module 'trailseal.query' has no attribute {name!r}")
