"""Operations routes: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from trailseal.api.common import json_response, requires, service


@requires("public")
async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


@requires("public")
async def readyz(request: Request) -> Response:
    """Ready when the store answers and the writer is not saturated."""
    svc = service(request)
    try:
        svc.trail.store.logs()
    except Exception as exc:  # noqa: BLE001 - any store failure means not ready
        return json_response({"status": "unavailable", "reason": f"store: {exc}"}, 503)
    sealer = svc.trail.sealer
    if getattr(sealer, "connected", True) is False:  # scale-out: this node's bus (NATS) is unreachable
        return json_response({"status": "unavailable", "reason": "the ingest bus (NATS) is unreachable"}, 503,
                             {"Retry-After": "1"})
    if sealer.queue_depth >= sealer.max_queue_events:
        return json_response({"status": "overloaded", "queue": sealer.queue_depth}, 503, {"Retry-After": "1"})
    return json_response({"status": "ready", "queue": sealer.queue_depth})


@requires("public")
async def metrics(request: Request) -> Response:
    svc = service(request)
    svc.metrics.queue_depth.set(svc.trail.sealer.queue_depth)
    svc.metrics.checkpoint_age.set(checkpoint_age(svc))
    behind = search_backlog(svc.trail.store)
    if behind is not None:
        svc.metrics.search_backlog.set(behind)
    unkeyed = vault_unkeyed(svc.trail.store)
    if unkeyed is not None:
        svc.metrics.vault_unkeyed.set(unkeyed)
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def checkpoint_age(svc) -> float:
    """Seconds since the newest commit of any log (0 when nothing was sealed yet)."""
    last = svc.extras.get("last_commit_time")
    if last is None:
        return 0.0
    return max(0.0, time.time() - last)


def search_backlog(store) -> int | None:
    """Committed entries the search indexes do not hold yet; None where this node cannot tell (no store
    of its own, or the store does not answer: /readyz says so)."""
    from trailseal.query import index, index_pg
    from trailseal.store.base import on_postgres

    try:
        return index_pg.pending(store) if on_postgres(store) else index.pending(index.connection(store))
    except Exception:  # noqa: BLE001 - a scrape must not fail for one gauge
        return None


def vault_unkeyed(store) -> int | None:
    """Vault rows of a SQLite store whose keys wait to be settled; None elsewhere (or if it does not answer)."""
    from trailseal.query import index
    from trailseal.store import sqlite_vault

    if type(store).__name__ != "SQLiteStore":
        return None
    try:
        return sqlite_vault.tail(index.connection(store))
    except Exception:  # noqa: BLE001 - a scrape must not fail for one gauge
        return None


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
