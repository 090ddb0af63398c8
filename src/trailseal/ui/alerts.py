"""Alerts for the console: the sealed `detect.alert` findings, their acknowledgements and the events
that caused them."""

from __future__ import annotations

from trailseal.ledger.verify import as_bytes
from trailseal.store.base import Filters

META_LOG = "trailseal"
ALERT_ACTION = "detect.alert"
ACK_ACTION = "trailseal.alert.ack"
MAX_ALERTS = 100
SHOWN_EVENTS = 5


def read_alerts(trail, token, limit: int = MAX_ALERTS) -> list[dict]:
    """Newest alerts first, each with ``ack`` (the acknowledgement event or None) and ``events``."""
    rows = trail.store.select([META_LOG], Filters(action_prefix=ALERT_ACTION), None, limit)
    found = trail.read_events([(log, index, data) for log, index, _, data in rows
                               if b'"action":"detect.alert"' in as_bytes(data)])
    acks = acknowledgements(trail)
    return [{"index": row["index"], "alert": row["event"], "ack": acks.get(row["index"]),
             "events": matching_events(trail, token, row["event"])} for row in found]


def acknowledgements(trail) -> dict[int, dict]:
    rows = trail.store.select([META_LOG], Filters(action_prefix=ACK_ACTION), None, 10_000)
    acks: dict[int, dict] = {}
    for row in trail.read_events([(log, index, data) for log, index, _, data in rows]):
        target = (row["event"].get("target") or {}).get("id", "")
        if target.isdecimal():
            acks[int(target)] = row["event"]  # newest first: the earliest acknowledgement wins
    return acks


def matching_events(trail, token, alert: dict) -> list[dict]:
    pointers = (alert.get("attributes") or {}).get("events") or []
    wanted = [(log, index) for log, index in pointers[:SHOWN_EVENTS]
              if isinstance(log, str) and isinstance(index, int) and token.allows_log(log)]
    rows = []
    for log, index in wanted:
        if index < trail.store.tree_size(log):
            rows += [(log, i, data) for i, data in trail.store.read_entries(log, index, index + 1)]
    return trail.read_events(rows)


def is_alert(trail, index: int) -> bool:
    if index >= trail.store.tree_size(META_LOG):
        return False
    return any(b'"action":"detect.alert"' in as_bytes(data)
               for _, data in trail.store.read_entries(META_LOG, index, index + 1))
