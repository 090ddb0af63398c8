"""C2SP tlog-tiles endpoints, so any standard tlog client, monitor or witness reads a trailseal log."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from trailseal import retention_db
from trailseal.api.common import ApiError, check_log_scope, requires, service
from trailseal.ledger import TileError, encode_entry_bundle, parse_tile_path
from trailseal.ledger.tiles import tile_width

IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=5"


def _log_size(request: Request) -> tuple[str, int]:
    log = request.path_params["log"]
    check_log_scope(request.state.token, log)
    size = service(request).trail.store.tree_size(log)
    if size == 0:
        raise ApiError(404, f"log {log!r} does not exist or is empty")
    return log, size


@requires("tlog")
async def checkpoint(request: Request) -> Response:
    log, _ = _log_size(request)
    note = service(request).trail.checkpoint(log)
    return Response(note, 200, {"Cache-Control": "no-cache"}, media_type="text/plain; charset=utf-8")


@requires("tlog")
async def minimum_index(request: Request) -> Response:
    """The log's C2SP tlog-tiles minimum index (a decimal line): entry bundles that end at or below it may
    be gone (retention expired entries in them); hash tiles, and so every proof, stay served."""
    log, size = _log_size(request)
    return Response(f"{_minimum_index(request, log, size)}\n", 200, {"Cache-Control": SHORT},
                    media_type="text/plain; charset=utf-8")


def _minimum_index(request: Request, log: str, size: int) -> int:
    return retention_db.minimum_index(retention_db.connection(service(request).trail.store), log, size)


@requires("tlog")
async def vkey(request: Request) -> Response:
    log = request.path_params["log"]
    check_log_scope(request.state.token, log)
    return Response(service(request).trail.vkey(log) + "\n", media_type="text/plain; charset=utf-8")


@requires("tlog")
async def tile(request: Request) -> Response:
    """`tile/<L>/<N>[.p/<W>]` (hashes) and `tile/entries/<N>[.p/<W>]` (entry bundles)."""
    log, size = _log_size(request)
    try:
        level, index, width = parse_tile_path("tile/" + request.path_params["rest"])
    except ValueError as exc:
        raise ApiError(400, f"not a tlog-tiles path: {exc}") from None
    tile_level = 0 if level == "entries" else level
    try:
        available = tile_width(size, tile_level, index)
    except TileError:
        available = 0
    if width > available:
        raise ApiError(404, f"tile {request.path_params['rest']} does not exist yet (tree size {size})")
    cache = IMMUTABLE if width == 256 else SHORT
    if level == "entries":
        body = _entries(request, log, index, width)
    else:
        data = service(request).trail.store.read_tile(log, level, index)
        if data is None or len(data) < width * 32:
            raise ApiError(404, "tile not stored")
        body = data[:width * 32]
    return Response(body, 200, {"Cache-Control": cache}, media_type="application/octet-stream")


def _entries(request: Request, log: str, index: int, width: int) -> bytes:
    start, trail = index * 256, service(request).trail
    stored = dict(trail.store.read_entries(log, start, start + width))
    try:  # an entry retention archived comes from its segment; an expired one ends the bundle's life
        entries = [stored[i] if i in stored else trail.entry(i, log) for i in range(start, start + width)]
    except IndexError as exc:
        floor = _minimum_index(request, log, service(request).trail.store.tree_size(log))
        raise ApiError(404, f"entry bundle {index} is below the log's minimum index {floor} (C2SP tlog-tiles "
                            f"pruning): {exc}; its hashes, and every proof, are still served") from None
    return encode_entry_bundle(entries)


routes = [
    Route("/tlog/{log}/checkpoint", checkpoint, methods=["GET"]),
    Route("/tlog/{log}/vkey", vkey, methods=["GET"]),
    Route("/tlog/{log}/minimum-index", minimum_index, methods=["GET"]),
    Route("/tlog/{log}/tile/{rest:path}", tile, methods=["GET"]),
]
