"""Input formats: one module per format, each turning one raw record into schema-v1 event dicts.

Every module exposes ``parse(raw: bytes, **ctx) -> list[dict]`` and ``split(data: bytes) -> list[bytes]``
(the records of a whole file or buffer). Modules whose records hold many events also expose
``parse_batch(raw, **ctx) -> (events, rejected)`` so a receiver can accept the good ones and report
the rest. A record that cannot be parsed raises :class:`FormatError`; nothing is skipped silently.
The mapping rules of each format are in docs/formats.md.

    from trailseal import formats
    for record in formats.get("access_log").split(data):
        events = formats.get("access_log").parse(record, component="web-1")
"""

from __future__ import annotations

import importlib
from types import ModuleType

NAMES: tuple[str, ...] = (
    "access_log",
    "auth_log",
    "syslog",
    "pgaudit",
    "cloudtrail",
    "k8s_audit",
    "otlp",
    "sarif",
    "iast",
    "ndjson",
    "mapping",
)


class FormatError(ValueError):
    """A record could not be parsed; ``reason`` says why, in words a sender can act on."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def get(name: str) -> ModuleType:
    """The parser module for a format name; KeyError names the known formats."""
    if name not in NAMES:
        raise KeyError(f"unknown format {name!r}; known: {', '.join(NAMES)}")
    return importlib.import_module(f"trailseal.formats.{name}")


__all__ = ["NAMES", "FormatError", "get"]
