"""What every receiver shares: parsed dicts to sealable events, rejections, and the meta-log record of them.

A receiver parses its input with a :mod:`trailseal.formats` module, then has the event dicts validated
(schema v1, the log a token may write to) and protected record by record
(:func:`trailseal.receivers.records.prepare_records`: in the prepare workers when they are free, else
here), so a value privacy protection cannot seal refuses that record, not the batch. Everything refused
becomes a :class:`Rejection` with a reason; :func:`rejection_event` is the ``trailseal.ingest.rejected`` event
that records a batch of them in the ``trailseal`` meta log (never the rejected bytes themselves,
only their SHA-256 and length, since they may hold personal data or hostile content).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from trailseal.event import EventError, Sealable, to_event
from trailseal.protection import Protection, seal_received

log = logging.getLogger("trailseal.receivers")
META_LOG = "trailseal"
FIRST_ERRORS = 5


@dataclass(frozen=True, slots=True)
class Rejection:
    """One refused record: where it was, why, and (for the meta log) its digest and size."""

    position: int | None
    reason: str
    field: str | None = None
    digest: str | None = None
    size: int | None = None

    @property
    def text(self) -> str:
        """The reason, naming the field when there is one."""
        return f"{self.field}: {self.reason}" if self.field else self.reason

    def as_error(self) -> dict[str, Any]:
        """The JSON form used in answers and in the meta log."""
        error: dict[str, Any] = {"position": self.position, "field": self.field, "reason": self.reason[:500]}
        if self.digest is not None:
            error.update(sha256=self.digest, bytes=self.size)
        return error


def reason_of(exc: Exception) -> str:
    """Why a record was refused: a parser's or validator's reason, or (logged as the bug it is) the
    unexpected error, so one poison record never stops a receiver or fails its batch."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str):
        return reason
    log.error("unexpected %s while reading a record", type(exc).__name__, exc_info=exc)
    return f"the record could not be read ({type(exc).__name__})"


def rejected_bytes(position: int | None, reason: str, raw: bytes) -> Rejection:
    """A rejection of raw input, identified by its SHA-256 and length."""
    return Rejection(position, reason, None, hashlib.sha256(raw).hexdigest(), len(raw))


@dataclass
class Stats:
    """Counters of one receiver: records in, events sealed, rejections by reason."""

    records: int = 0
    sealed: int = 0
    rejected: int = 0
    failed: int = 0
    reasons: Counter = field(default_factory=Counter)

    def reject(self, rejections: Iterable[Rejection]) -> None:
        for rejection in rejections:
            self.rejected += 1
            self.reasons[_reason_class(rejection.reason)] += 1


def _reason_class(reason: str) -> str:
    """A short, low-cardinality label for a reason (its text up to the first colon or digit)."""
    head = reason.split(":", 1)[0]
    return "".join(c for c in head if not c.isdigit()).strip()[:60] or "invalid"


def sealable(protection: Protection, event: dict[str, Any], received: str) -> Sealable:
    """A parsed event validated, normalized and protected, as it will be sealed (encoded once). Raises
    EventError for the event, protection's own refusals included (a value its masks grew past a limit)."""
    return seal_received(protection, to_event(event), received)


def rejection_event(
    receiver: str, rejections: list[Rejection], actor: dict[str, Any], time: str, **attributes: Any
) -> dict[str, Any]:
    """The meta-log event recording that a receiver refused records, and why."""
    errors = [r.as_error() for r in rejections[:FIRST_ERRORS]]
    return {
        "log": META_LOG,
        "time": time,
        "category": "system",
        "action": "trailseal.ingest.rejected",
        "outcome": "failure",
        "severity": "low",
        "reason": rejections[0].reason[:500],
        "actor": actor,
        "source": {"component": f"trailseal-{receiver}", "kind": "trailseal", "format": "trailseal"},
        "attributes": {
            "receiver": receiver,
            "rejected": len(rejections),
            "first_errors": errors,
            **{k: v for k, v in attributes.items() if v is not None},
        },
    }


def meta_item(protection: Protection, event: dict[str, Any], received: str) -> Sealable | None:
    """A meta-log event ready to seal, or None (logged) if it cannot be built."""
    try:
        return sealable(protection, event, received)
    except EventError as exc:  # a bug, not input: say so loudly but keep receiving
        log.error("could not build the rejection record: %s", exc)
        return None


def count(metrics: Any, sealed: dict[str, int], rejections: list[Rejection], receiver: str) -> None:
    """Feed the API's Prometheus counters, when a receiver runs beside the API."""
    if metrics is None:
        return
    for log_name, n in sealed.items():
        metrics.accepted.labels(log=log_name).inc(n)
    if rejections:
        metrics.rejected.labels(reason=f"{receiver}_invalid").inc(len(rejections))


def per_log(items: Iterable[Sealable]) -> dict[str, int]:
    """How many items go to each log."""
    counts: dict[str, int] = {}
    for item in items:
        counts[item.log] = counts.get(item.log, 0) + 1
    return counts
