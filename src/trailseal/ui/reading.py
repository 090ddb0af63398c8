"""Reading for the console: the newest entries across logs, and what arrived since a cursor."""

from __future__ import annotations

import re

from trailseal.api.common import ApiError

META_LOG = "trailseal"
_CURSOR = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}:\d{1,18}")


def visible_logs(trail, token, wanted: str | None) -> list[str]:
    """Logs this token may read; the meta log only when asked for by name."""
    names = [info.name for info in trail.logs() if not token.logs or token.allows_log(info.name)]
    if wanted:
        if wanted not in names:
            raise ApiError(404 if not token.logs or token.allows_log(wanted) else 403,
                           f"no log {wanted!r} you may read (logs: {', '.join(names) or 'none yet'})")
        return [wanted]
    return [name for name in names if name != META_LOG]


def sizes(trail, logs: list[str]) -> dict[str, int]:
    return {info.name: info.size for info in trail.logs() if info.name in logs}


def encode_cursor(positions: dict[str, int]) -> str:
    return ",".join(f"{log}:{size}" for log, size in sorted(positions.items()))


def decode_cursor(text: str) -> dict[str, int]:
    parts = [p for p in text.split(",") if p]
    if len(parts) > 1000 or not all(_CURSOR.fullmatch(p) for p in parts):
        raise ApiError(400, "after= must be log:size pairs, as the stream page sends them")
    return {log: int(size) for log, size in (p.split(":") for p in parts)}


def newest(trail, logs: list[str], limit: int, since: dict[str, int] | None = None) -> tuple[list[dict], str]:
    """Up to ``limit`` newest entries (after ``since`` when given), newest first, and the new cursor."""
    now = sizes(trail, logs)
    rows = []
    for log, size in now.items():
        start = max(0, size - limit, (since or {}).get(log, 0))
        rows += [(log, index, data) for index, data in trail.store.read_entries(log, start, size)]
    events = trail.read_events(rows)
    events.sort(key=lambda e: (e["event"].get("received", ""), e["index"]), reverse=True)
    return events[:limit], encode_cursor(now)
