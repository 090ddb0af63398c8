"""The OpenAPI 3.1 document, built from the route table and the event JSON Schema."""

from __future__ import annotations

from typing import Any

from trailseal.event import json_schema

ERROR = {"$ref": "#/components/schemas/Error"}
SECURED = [{"bearer": []}]


def _param(name: str, where: str = "query", schema: dict | None = None, required: bool = False) -> dict:
    return {"name": name, "in": where, "required": required or where == "path",
            "schema": schema or {"type": "string"}}


def _responses(ok: dict[str, Any], *codes: int, success: int = 200) -> dict:
    answers = {str(success): ok}
    for code in codes:
        answers[str(code)] = {"description": "error", "content": {"application/json": {"schema": ERROR}}}
    return answers


def _json(schema: dict) -> dict:
    return {"description": "ok", "content": {"application/json": {"schema": schema}}}


def _text(media: str = "text/plain") -> dict:
    return {"description": "ok", "content": {media: {"schema": {"type": "string"}}}}


LIST_PARAMS = [_param(n) for n in ("q", "since", "until", "action", "actor", "target", "source", "log",
                                   "cursor")] + [
    _param("category", schema={"type": "string", "enum": list(json_schema()["$defs"]["Event"]["properties"]
                                                               ["category"]["enum"])}),
    _param("outcome", schema={"type": "string", "enum": ["success", "failure", "error", "unknown"]}),
    _param("limit", schema={"type": "integer", "minimum": 1, "maximum": 1000}),
]

OPERATIONS: dict[tuple[str, str], dict] = {
    ("/v1/events", "post"): {
        "summary": "Seal events (JSON array or NDJSON); answers after the commit with one receipt per event.",
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}},
            "application/x-ndjson": {"schema": {"type": "string"}}}},
        "responses": {**_responses(_json({"type": "object"}), 400, 401, 403, 408, 413, 415, 422, 429, 503),
                      "207": _json({"type": "object"})},
    },
    ("/v1/events", "get"): {"summary": "List sealed events, newest first, with cursor pagination.",
                            "parameters": LIST_PARAMS, "responses": _responses(_json({"type": "object"}), 400, 401, 403)},
    ("/v1/events/{log}/{index}", "get"): {
        "summary": "One sealed event; ?proof=1 adds its inclusion proof and checkpoint.",
        "parameters": [_param("log", "path"), _param("index", "path"), _param("proof")],
        "responses": _responses(_json({"type": "object"}), 400, 401, 403, 404)},
    ("/v1/logs", "get"): {"summary": "Logs, sizes, latest checkpoints and verifier keys.",
                          "responses": _responses(_json({"type": "object"}), 401, 403)},
    ("/tlog/{log}/checkpoint", "get"): {"summary": "C2SP tlog-tiles checkpoint.",
                                        "parameters": [_param("log", "path")], "responses": _responses(_text(), 404)},
    ("/tlog/{log}/vkey", "get"): {"summary": "The log's verifier key.", "parameters": [_param("log", "path")],
                                  "responses": _responses(_text())},
    ("/tlog/{log}/tile/{rest}", "get"): {"summary": "C2SP tlog-tiles hash tiles and entry bundles.",
                                         "parameters": [_param("log", "path"), _param("rest", "path")],
                                         "responses": _responses(_text("application/octet-stream"), 400, 404)},
    ("/v1/admin/erase", "post"): {
        "summary": "GDPR erasure: delete a subject's vault values; the erasure is sealed (409 while a legal "
                   "hold keeps events of the subject).",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["subject"], "additionalProperties": False,
            "properties": {"subject": {"type": "string"}, "log": {"type": "string"}}}}}},
        "responses": _responses(_json({"type": "object"}), 400, 401, 403, 409)},
    ("/v1/admin/holds", "get"): {
        "summary": "Legal holds: the active ones (all=true: released ones too).",
        "parameters": [_param("all", schema={"type": "boolean"})],
        "responses": _responses(_json({"type": "object"}), 401, 403, 503)},
    ("/v1/admin/holds", "post"): {
        "summary": "Place a legal hold by query or by event ids; sealed with the token that placed it.",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["reason"], "additionalProperties": False,
            "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 1000},
                           "query": {"type": "string"}, "ids": {"type": "array", "items": {"type": "string"},
                                                                "maxItems": 10000},
                           "log": {"type": "string"}}}}}},
        "responses": _responses(_json({"type": "object"}), 400, 401, 403, 413, 503, success=201)},
    ("/v1/admin/holds/{hold}/release", "post"): {
        "summary": "Release an active legal hold; sealed with the token that released it.",
        "parameters": [_param("hold", "path")],
        "responses": _responses(_json({"type": "object"}), 400, 401, 403, 404, 503)},
    ("/v1/alerts", "get"): {"summary": "Alerts raised (sealed finding events), newest first.",
                            "parameters": [_param("cursor"), _param("limit", schema={"type": "integer", "minimum": 1,
                                                                                      "maximum": 1000})],
                            "responses": _responses(_json({"type": "object"}), 400, 401, 403)},
    ("/healthz", "get"): {"summary": "Liveness.", "responses": _responses(_json({"type": "object"}))},
    ("/readyz", "get"): {"summary": "Readiness.", "responses": _responses(_json({"type": "object"}), 503)},
    ("/metrics", "get"): {"summary": "Prometheus metrics.", "responses": _responses(_text())},
    ("/openapi.json", "get"): {"summary": "This document.", "responses": _responses(_json({"type": "object"}))},
}


def openapi_document(routes) -> dict[str, Any]:
    """Every route with its permission; routes without a description still appear (never hidden)."""
    defs = _components(json_schema()["$defs"])
    paths: dict[str, dict] = {}
    for route in routes:
        if not hasattr(route, "methods"):
            continue  # a Mount (the /ui console: HTML pages with sessions, not API operations)
        path = route.path.replace("{rest:path}", "{rest}")
        permission = getattr(route.endpoint, "permission", "public")
        for method in sorted(m.lower() for m in (route.methods or ()) if m != "HEAD"):
            op = dict(OPERATIONS.get((path, method), {"summary": path, "responses": _responses(_text())}))
            op["x-permission"] = permission
            if permission not in ("public", "tlog"):
                op["security"] = SECURED
            paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "trailseal", "version": "1", "description": "Audit-ready access logs, sealed."},
        "paths": paths,
        "components": {
            "schemas": {**defs, "Error": {"type": "object", "required": ["error", "status"],
                                          "properties": {"error": {"type": "string"},
                                                         "status": {"type": "integer"}}}},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _components(defs: dict) -> dict:
    """msgspec's `#/$defs/X` references, rewritten for OpenAPI's `#/components/schemas/X`."""
    import json

    return json.loads(json.dumps(defs).replace('"#/$defs/', '"#/components/schemas/'))
