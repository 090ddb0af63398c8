"""Reading: the query language, search with cursors, timelines (see language.py and search.py)."""

from trailseal.query.language import QueryError, format, matches, parse, predicate
from trailseal.query.search import Page, count, explain, search, timeline

__all__ = ["Page", "QueryError", "count", "explain", "format", "matches", "parse", "predicate", "search",
           "timeline"]
