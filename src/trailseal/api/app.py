"""The ASGI application: routers, JSON errors everywhere, OpenAPI at /openapi.json."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from trailseal import ui
from trailseal.alerts.integrity import IntegrityWatch
from trailseal.api import admin, alerts, export, holds, ingest, ops, read, receivers, tlog
from trailseal.api.auth import RateLimiter, TokenStore
from trailseal.api.common import ApiError, Service, error_response, json_response, requires
from trailseal.api.metrics import Metrics
from trailseal.api.openapi import openapi_document
from trailseal.datadir import Trail
from trailseal.jobs import start_jobs

log = logging.getLogger("trailseal.api")


def create_app(trail: Trail, *, record_reads: bool = True, detect: bool | None = None,
               scheduled: bool = True, receivers_on: bool = True) -> Starlette:
    """The trailseal API over an open data dir (detection on unless the config or ``detect`` says no;
    the configured syslog listeners and file tails start unless ``receivers_on`` is false)."""
    server = trail.config.server
    svc = Service(trail, TokenStore(trail.directory), Metrics(),
                  RateLimiter(server.rate_limit_per_token), server.public_tlog, record_reads)
    trail.sealer.stats.observers.append(svc.metrics.observe_commit)
    trail.sealer.on_commit.append(lambda sealed: svc.extras.__setitem__("last_commit_time", time.time()))

    if hasattr(trail.store, "start_checkpointer"):
        trail.store.start_checkpointer()  # no request waits for a 40 MB WAL write-back (store/sqlite.py)
    detection = start_detection(trail) if (trail.config.alerts.enabled if detect is None else detect) else None
    svc.extras["detection"] = detection
    alerts_conf = trail.config.alerts
    integrity = IntegrityWatch(trail, alerts_conf.integrity_interval_seconds,
                               alerts_conf.integrity_full_every).start() if detection else None
    svc.extras["integrity"] = integrity
    jobs = start_jobs(trail) if scheduled else None
    svc.extras["jobs"] = jobs

    @asynccontextmanager
    async def lifespan(app: Starlette):
        from trailseal.receivers.service import start_receivers

        running = start_receivers(trail, svc.metrics) if receivers_on else None  # syslog, tails: [receivers]
        threading.Thread(target=_warm_tiles, args=(trail,), name="trailseal-warm-tiles", daemon=True).start()
        yield
        if running is not None:
            await asyncio.to_thread(running.stop)  # seal what they read before the trail closes
        if jobs is not None:
            await asyncio.to_thread(jobs.stop)
        if detection is not None:
            await asyncio.to_thread(detection.stop)  # waits for the sinks to deliver what is queued
            await asyncio.to_thread(integrity.stop)
        trail.close()
        svc.tokens.close()

    routes = [*ingest.routes, *read.routes, *tlog.routes, *ops.routes, *admin.routes, *holds.routes, *alerts.routes,
              Route("/openapi.json", openapi, methods=["GET"]), *receivers.routes,
              *export.routes, *ui.routes]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={ApiError: on_api_error, HTTPException: on_http_error,
                                        Exception: on_unexpected})
    app.state.service = svc
    return app


def _warm_tiles(trail: Trail) -> None:
    """Proofs read one tile each: on a large log, serve them from the page cache from the start."""
    started = time.monotonic()
    try:
        read = trail.warm_tiles()
    except Exception:  # noqa: BLE001 - only a cache warm-up; the server works without it
        log.warning("warming the tiles failed", exc_info=True)
        return
    log.info("read %d MiB of tiles in %.1f s", read >> 20, time.monotonic() - started)


def start_detection(trail: Trail):
    """The Sigma engine on the sealed stream, with the configured sinks."""
    from trailseal.alerts.service import DetectionService, engine_for
    from trailseal.alerts.sinks import build_sinks

    conf = trail.config.alerts
    engine = engine_for(conf)  # loaded here too: a broken rule file stops serve at start, not in the child
    sinks = build_sinks(conf, trail.directory)  # webhook, Slack, SMTP, syslog, stdout; each in its own thread
    return DetectionService(trail, engine, sinks, conf.silent_after_seconds, conf.max_alerts_per_rule_per_minute,
                            child=str(trail.directory)).start()  # the engine runs in a child process


@requires("public")
async def openapi(request: Request) -> Response:
    return json_response(openapi_document(request.app.routes))


async def on_api_error(request: Request, exc: ApiError) -> Response:
    return error_response(exc.status, exc.reason, exc.headers, **exc.extra)


async def on_http_error(request: Request, exc: HTTPException) -> Response:
    reasons = {404: f"no route {request.url.path[:200]!r}", 405: f"method {request.method} not allowed here"}
    return error_response(exc.status_code, reasons.get(exc.status_code, exc.detail), exc.headers)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, f"internal error ({type(exc).__name__}); the event log is unaffected")
