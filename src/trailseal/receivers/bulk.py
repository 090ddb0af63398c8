"""The Elasticsearch ``_bulk`` API as stock shippers use it: NDJSON in, ES-shaped answers out.

Filebeat, Logstash, Vector and Fluent Bit send ``index`` or ``create`` actions, each followed by its
document. ``update`` and ``delete`` are refused per item (a sealed log is append-only). A document
that cannot be read is a per-item 400, as in Elasticsearch; a malformed action line makes the whole
request a 400, as in Elasticsearch, because after it no item can be told from the next.
Before they send, shippers probe ``GET /`` (version), ``GET /_license`` (Beats, Logstash: status
``active``), ``GET /_xpack`` (Logstash monitoring) and ``GET /_cluster/health`` (Vector); every
answer carries ``X-Elastic-Product: Elasticsearch``, which the official clients check.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgspec

from trailseal.formats import FormatError
from trailseal.formats._common import load_json

SOURCE_OPS = ("index", "create")
REFUSED_OPS = ("update", "delete")
PRODUCT_HEADERS = {"X-Elastic-Product": "Elasticsearch"}
CLUSTER = "trailseal"
_decoder = msgspec.json.Decoder()


class BulkError(Exception):
    """The whole bulk request is unreadable: answer 400 with this ES error type and reason."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind, self.reason = kind, reason


@dataclass
class BulkItem:
    """One action of a bulk request and its document (or why it cannot be accepted)."""

    op: str
    index: str
    id: str | None
    doc: Any = None
    raw: bytes = b""
    error: tuple[int, str, str] | None = None  # (status, ES error type, reason)


def parse_bulk(body: bytes, default_index: str | None = None) -> list[BulkItem]:
    """The items of an NDJSON bulk body; BulkError if an action line cannot be read."""
    lines = body.split(b"\n")
    items: list[BulkItem] = []
    i = 0
    while i < len(lines):
        line = lines[i].rstrip(b"\r")
        i += 1
        if not line.strip():
            continue
        op, meta = _action(line, i)
        item = BulkItem(op, _index(meta, default_index), _doc_id(meta, i))
        if op != "delete":
            if i >= len(lines) or not lines[i].strip():
                raise BulkError(
                    "action_request_validation_exception",
                    f"Validation Failed: 1: source is missing for the action on line {i};",
                )
            item.raw = lines[i].rstrip(b"\r")
            i += 1
        items.append(_with_document(item))
    return items


def _action(line: bytes, number: int) -> tuple[str, dict[str, Any]]:
    """(operation, metadata) of an action line, or BulkError."""
    try:
        action = _decoder.decode(line)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        raise BulkError(
            "x_content_parse_exception", f"Malformed action/metadata line [{number}]: not JSON"
        ) from None
    if not isinstance(action, dict) or len(action) != 1:
        raise BulkError(
            "illegal_argument_exception",
            f"Malformed action/metadata line [{number}], expected an object with one field",
        )
    op, meta = next(iter(action.items()))
    if op not in SOURCE_OPS + REFUSED_OPS or not isinstance(meta, dict):
        raise BulkError(
            "illegal_argument_exception",
            f"Malformed action/metadata line [{number}], expected index, create, update or "
            f"delete but found [{str(op)[:40]}]",
        )
    return op, meta


def _index(meta: dict[str, Any], default: str | None) -> str:
    value = meta.get("_index", default)
    return value if isinstance(value, str) and value else (default or "_bulk")


def _doc_id(meta: dict[str, Any], number: int) -> str | None:
    value = meta.get("_id")
    if value is None:
        return None
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
        raise BulkError("illegal_argument_exception", f"Malformed action/metadata line [{number}]: bad _id")
    return str(value)


def _with_document(item: BulkItem) -> BulkItem:
    """Decode the item's document, or mark the item refused with the reason."""
    if item.op in REFUSED_OPS:
        item.error = (
            400,
            "illegal_argument_exception",
            f"trailseal is append-only: '{item.op}' is not supported; use index or create",
        )
        return item
    try:
        item.doc = load_json(item.raw)
    except FormatError as exc:
        item.error = (400, "document_parsing_exception", exc.reason)
        return item
    if not isinstance(item.doc, dict):
        item.error = (400, "document_parsing_exception", "the document must be a JSON object")
    return item


def event_id(item: BulkItem) -> str | None:
    """The idempotency id of a document that carries an ``_id``: re-sent documents dedupe."""
    if item.id is None:
        return None
    key = f"es:{item.index}:{item.id}"
    return key if len(key) <= 128 and key.isascii() and " " not in key else "es:" + _digest(key)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def item_created(item: BulkItem, event_id: str, seq_no: int) -> dict[str, Any]:
    """The answer for an item that was sealed."""
    return {
        item.op: {
            "_index": item.index,
            "_id": item.id or event_id,
            "_version": 1,
            "result": "created",
            "_shards": {"total": 1, "successful": 1, "failed": 0},
            "_seq_no": seq_no,
            "_primary_term": 1,
            "status": 201,
        }
    }


def item_failed(item: BulkItem, status: int, kind: str, reason: str) -> dict[str, Any]:
    """The answer for an item that was refused."""
    return {
        item.op: {
            "_index": item.index,
            "_id": item.id,
            "status": status,
            "error": {"type": kind, "reason": reason[:500]},
        }
    }


def bulk_answer(took_ms: int, items: list[dict[str, Any]]) -> dict[str, Any]:
    errors = any("error" in next(iter(entry.values())) for entry in items)
    return {"took": took_ms, "errors": errors, "items": items}


def es_error(status: int, kind: str, reason: str) -> dict[str, Any]:
    """An Elasticsearch error body."""
    cause = {"type": kind, "reason": reason[:500]}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


def info(version: str) -> dict[str, Any]:
    """``GET /``: what shippers read the version from."""
    return {
        "name": CLUSTER,
        "cluster_name": CLUSTER,
        "cluster_uuid": "trailseal-receiver",
        "version": {
            "number": version,
            "build_flavor": "default",
            "build_type": "trailseal",
            "build_hash": "trailseal",
            "build_date": "2024-01-01T00:00:00.000Z",
            "build_snapshot": False,
            "lucene_version": "9.12.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
    }


def license_info() -> dict[str, Any]:
    """``GET /_license``: an active basic license, which Beats and Logstash require."""
    return {
        "license": {
            "status": "active",
            "uid": "trailseal",
            "type": "basic",
            "issue_date": "2024-01-01T00:00:00.000Z",
            "issue_date_in_millis": 1704067200000,
            "max_nodes": 1000,
            "max_resource_units": None,
            "issued_to": CLUSTER,
            "issuer": "elasticsearch",
            "start_date_in_millis": -1,
        }
    }


def xpack_info() -> dict[str, Any]:
    """``GET /_xpack``: Logstash reads the license from here."""
    return {
        "build": {"hash": "trailseal", "date": "2024-01-01T00:00:00.000Z"},
        "license": {"uid": "trailseal", "type": "basic", "mode": "basic", "status": "active"},
        "features": {},
        "tagline": "You know, for X",
    }


def cluster_health() -> dict[str, Any]:
    """``GET /_cluster/health``: Vector's health check wants a 200."""
    return {
        "cluster_name": CLUSTER,
        "status": "green",
        "timed_out": False,
        "number_of_nodes": 1,
        "number_of_data_nodes": 1,
        "active_primary_shards": 0,
        "active_shards": 0,
        "relocating_shards": 0,
        "initializing_shards": 0,
        "unassigned_shards": 0,
        "delayed_unassigned_shards": 0,
        "number_of_pending_tasks": 0,
        "number_of_in_flight_fetch": 0,
        "task_max_waiting_in_queue_millis": 0,
        "active_shards_percent_as_number": 100.0,
    }
