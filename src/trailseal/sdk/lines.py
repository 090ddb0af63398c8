"""Request records straight to NDJSON lines: the forwarder's fast path.

The requests of an app differ in a few values — time, id, client IP, user agent, trace, size, latency —
while their route, status and verdict repeat. For each *shape* (auditor, method, route template, status,
which of the optional values are present) the full path (``HttpAuditor.render`` and the JSON encoder)
renders one event with marker values once; the encoded line, cut at the markers, becomes one f-string,
and each later request of that shape is one call of it with its own values. Records a shape cannot
express (an actor, an exception, no route template, odd types) take the full path: the line is the same
either way (``tests/sdk/test_lines.py`` and ``test_forwarder.py`` compare them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from trailseal.event import MAX_EVENT_BYTES, Source
from trailseal.sdk.web import Forwarded, HttpAuditor, host, text

MAX_SHAPES = 10_000
MAX_TEXTS = 4096  # client addresses whose JSON text is remembered
# the values filled in per request, in format-argument order; bytes and latency are JSON numbers
FIELDS = ("time", "id", "ip", "user_agent", "trace_id", "span_id", "bytes", "latency")
NUMBERS = frozenset({"bytes", "latency"})
LATENCY = FIELDS.index("latency")
_encode = msgspec.json.encode


def marker(name: str) -> str:
    """A value no real field holds (control characters, which JSON escapes), standing for ``name``."""
    return f"\x01{name}\x01"


def json_text(value: str) -> str:
    """A string as it appears between the quotes of a JSON string."""
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return value
    return _encode(value)[1:-1].decode()


def cut(line: bytes, present: tuple[str, ...]) -> tuple[list[str], list[int]] | None:
    """The encoded event cut at the markers of ``present``: its constant pieces (one more than the markers)
    and, between them, the index in FIELDS of each value; None if a marker is not found exactly once."""
    cuts = []
    for name in present:
        token = _encode(marker(name))
        if name not in NUMBERS:
            token = token[1:-1]  # a string's text: the quotes stay in the template
        at = line.find(token)
        if at < 0 or line.find(token, at + 1) >= 0:
            return None
        cuts.append((at, len(token), FIELDS.index(name)))
    pieces, order, position = [], [], 0
    for at, size, index in sorted(cuts):
        pieces.append(line[position:at].decode())
        order.append(index)
        position = at + size
    pieces.append(line[position:].decode() + "\n")
    return pieces, order


def compiled(pieces: list[str], order: list[int]) -> Callable[..., str]:
    """A function of FIELDS' values giving the line: one f-string of the pieces and values (the pieces are
    names bound to the text, never code)."""
    names = [f"_{n}" for n in range(len(pieces))]
    body = "".join(f"{{{names[n]}}}{{{FIELDS[index]}{'!r' if index == LATENCY else ''}}}"
                   for n, index in enumerate(order))
    source = f"lambda {', '.join(FIELDS)}: f'{body}{{{names[-1]}}}'"
    return eval(source, dict(zip(names, pieces, strict=True)))  # noqa: S307 - our own names only


class RecordLines:
    """NDJSON lines for a forwarder's request records, by shape where it can (see the module docstring)."""

    def __init__(self, auditors: list[HttpAuditor], new_ids: Callable[[int], list[str]],
                 clock: Callable[[int], str], source: Source, log: str | None):
        self.auditors, self.new_ids, self.clock, self.source, self.log = auditors, new_ids, clock, source, log
        self.shapes: dict[tuple, Callable[..., str] | None] = {}
        self.texts: dict[str, str] = {}  # client address -> its JSON text

    def lines(self, records: list) -> list[bytes | None]:
        """Each record's line (None where only the full path can render it, or the record is malformed): one
        loop with its lookups held in locals, the common case (no header to parse) inline."""
        shapes, clock, texts, limit = self.shapes, self.clock, self.texts, MAX_EVENT_BYTES - 64
        rendered: list[bytes | None] = []
        add = rendered.append
        for record, event_id in zip(records, self.new_ids(len(records)), strict=True):
            try:
                (index, ns, elapsed, method, _, template, status, size, error, actor, peer, forwarded_for,
                 user_agent, traceparent) = record
                if (error is not None or actor is not None or not template or type(template) is not str
                        or type(status) is not int or type(size) is not int or type(elapsed) is not float
                        or type(ns) is not int):
                    add(None)
                    continue
                if forwarded_for is None and user_agent is None and traceparent is None:  # nothing to parse
                    ip, agent, trace_id, span_id = host(peer), None, None, None
                else:
                    ip, agent, trace_id, span_id = self.auditors[index].origin(
                        host(peer), text(forwarded_for), text(user_agent), text(traceparent))
                key = (index, method, template, status, ip is None, agent is None, trace_id is None)
                shape = shapes.get(key, False)
                if shape is False:
                    shape = self._shape(key, record, ip, agent, trace_id)
                if shape is None:
                    add(None)
                    continue
                if ip:
                    ip = texts.get(ip) or self._text(ip)
                line = shape(clock(ns), event_id, ip, agent and json_text(agent), trace_id, span_id, size,
                             round(elapsed * 1000, 3)).encode()
                add(line if len(line) <= limit else None)  # the full path reports it
            except Exception:  # noqa: BLE001 - the full path renders (or reports) it
                add(None)
        return rendered

    def _text(self, ip: str) -> str:
        """An address as it appears in a JSON string, remembered (a service sees few client addresses)."""
        found = json_text(ip)
        if len(self.texts) >= MAX_TEXTS:
            self.texts.clear()
        self.texts[ip] = found
        return found

    def _shape(self, key: tuple, record: list, ip: Any, agent: Any, trace_id: Any) -> Callable[..., str] | None:
        """Render one event of this shape with markers and compile its line's function (None: no shape)."""
        present = tuple(name for name, value in zip(FIELDS, ("t", "i", ip, agent, trace_id, trace_id, 0, 0.0),
                                                    strict=True) if value is not None)
        probe = Forwarded.__new__(Forwarded)
        (_, probe.ns, probe.elapsed, probe.method, probe.path, probe.template, probe.status, _, probe.error,
         probe.final_actor) = record[:10]
        probe.auditor, probe.bytes = self.auditors[key[0]], marker("bytes")
        probe.origin = tuple(marker(name) if name in present else None
                             for name in ("ip", "user_agent", "trace_id", "span_id"))
        try:
            event = probe.to_event(marker("id"), marker("time"), self.source, self.log)
            event.attributes = {"latency_ms": marker("latency")}
            found = cut(_encode(event), present)
            shape = compiled(*found) if found else None
        except Exception:  # noqa: BLE001 - whatever a shape cannot do, the full path does (and reports)
            shape = None
        if len(self.shapes) < MAX_SHAPES:
            self.shapes[key] = shape
        return shape
