"""A ``logging.Handler`` that turns log records into audit events.

    logging.getLogger("billing").addHandler(TrailsealHandler(client))
    log.info("refund issued", extra={"actor": "alice", "action": "refund.issue", "target": "order-42"})

Defaults: category ``system``, action from the logger name, severity from the level, outcome ``error``
for records with an exception or at ERROR and above, else ``unknown``. ``extra=`` keys named like event
fields (actor, action, category, outcome, reason, severity, target, request, log) set those fields; any
other ``extra=`` keys become attributes.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from trailseal.sdk.client import EVENT_FIELDS

STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
SEVERITY = ((logging.CRITICAL, "critical"), (logging.ERROR, "high"), (logging.WARNING, "medium"))
MAX_TEXT = 4000
_NOT_ACTION = re.compile(r"[^a-z0-9_*-]+")


def action_from(logger_name: str) -> str:
    """A dotted lower-case action from a logger name: ``MyApp.Auth`` -> ``myapp.auth``."""
    parts = [_NOT_ACTION.sub("_", part.lower()).strip("_") for part in logger_name.split(".")]
    return ".".join(p for p in parts if p) or "log"


def severity_of(levelno: int) -> str:
    return next((name for level, name in SEVERITY if levelno >= level), "info")


class TrailsealHandler(logging.Handler):
    """Send each record at or above ``level`` to ``client`` as an audit event."""

    def __init__(self, client: Any, level: int = logging.NOTSET, category: str = "system"):
        super().__init__(level)
        self.client, self.category = client, category
        self._actions: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("trailseal.sdk"):
            return  # the client's own complaints must not loop back into it
        try:
            self.client.log(**self.fields(record))
        except Exception:  # noqa: BLE001 - logging's convention: report, never raise
            self.handleError(record)

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        """The log() arguments for one record."""
        failed = record.exc_info is not None or record.levelno >= logging.ERROR
        fields: dict[str, Any] = {
            "category": self.category, "action": self.action(record.name),
            "outcome": "error" if failed else "unknown", "severity": severity_of(record.levelno),
            "message": record.getMessage()[:MAX_TEXT], "logger": record.name, "level": record.levelname,
        }
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            fields["reason"] = f"{type(exc).__name__}: {exc}"[:MAX_TEXT]
            fields["exception"] = self.formatException(record.exc_info)[-MAX_TEXT:]
        for key, value in record.__dict__.items():
            if key not in STANDARD_ATTRS and not key.startswith("_"):
                fields[key if key in EVENT_FIELDS or key not in fields else f"extra_{key}"] = value
        return fields

    def action(self, logger_name: str) -> str:
        """The cached action of a logger."""
        action = self._actions.get(logger_name)
        if action is None:
            action = self._actions[logger_name] = action_from(logger_name)
        return action

    def formatException(self, exc_info) -> str:  # noqa: N802 - logging's name
        return logging.Formatter().formatException(exc_info)
