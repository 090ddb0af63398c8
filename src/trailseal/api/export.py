"""Streaming exports and evidence bundles over HTTP (role auditor or admin).

``GET /v1/export?q=QUERY&format=jsonl|csv|ocsf|ecs|ocsf-parquet[&log=L][&class_uid=N]`` streams the
matching events; ``ocsf-parquet`` needs ``class_uid`` (one OCSF class per file, as Security Lake
takes it). ``GET /v1/export/bundle?q=QUERY[&log=L]`` answers an evidence bundle (zip). Each export
is sealed in the `trailseal` meta log: when it starts (who, query, format) and when it ends (rows).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route

from trailseal.api.common import ApiError, requires, service
from trailseal.api.read import readable_logs
from trailseal.query import QueryError, parse
from trailseal.query.export import FORMATS, ExportError, ExportResult, export_to, stream
from trailseal.query.ocsf import CLASSES, file_stem

MEDIA = {
    "jsonl": "application/x-ndjson",
    "ecs": "application/x-ndjson",
    "ocsf": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "ocsf-parquet": "application/vnd.apache.parquet",
}
SUFFIX = {
    "jsonl": "jsonl",
    "ecs": "ecs.ndjson",
    "ocsf": "ocsf.jsonl",
    "csv": "csv",
    "ocsf-parquet": "parquet",
}
PARAMS = {"q", "format", "log", "class_uid"}


def _params(request: Request, allowed: set[str]) -> tuple[str, str | None]:
    """The query (checked) and the one log it may read."""
    params = request.query_params
    unknown = set(params) - allowed
    if unknown:
        raise ApiError(400, f"unknown parameter(s): {', '.join(sorted(unknown))}")
    query = params.get("q", "")
    try:
        parse(query)
    except QueryError as exc:
        raise ApiError(400, f"query: {exc}") from None
    log = params.get("log")
    logs = readable_logs(request, log)
    if logs is not None and log is None and len(logs) != 1:
        raise ApiError(400, "this token reads several logs: add log=<name>")
    return query, (logs or [None])[0]


def _class_uid(request: Request, fmt: str) -> int | None:
    raw = request.query_params.get("class_uid")
    if raw is None:
        if fmt == "ocsf-parquet":
            raise ApiError(
                400,
                f"format ocsf-parquet is one OCSF class per file: add class_uid= "
                f"(one of {', '.join(map(str, CLASSES))})",
            )
        return None
    if not raw.isdecimal() or int(raw) not in CLASSES:
        raise ApiError(400, f"class_uid must be one of {', '.join(map(str, CLASSES))}")
    return int(raw)


@requires("audit")
async def export_events(request: Request) -> Response:
    svc = service(request)
    query, log = _params(request, PARAMS)
    fmt = request.query_params.get("format", "jsonl")
    if fmt not in FORMATS:
        raise ApiError(400, f"format must be one of {', '.join(FORMATS)}")
    class_uid = _class_uid(request, fmt)
    token = request.state.token
    await svc.record_read(
        token, request, "trailseal.export", query=query, format=fmt, log=log, class_uid=class_uid
    )
    name = f"trailseal-export.{file_stem(class_uid) + '.' if class_uid else ''}{SUFFIX[fmt]}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if fmt == "ocsf-parquet":
        return await _parquet(svc, request, query, log, class_uid, headers)
    result = ExportResult()
    chunks = stream(svc.trail, query, fmt, log, class_uid, counter=result)
    return StreamingResponse(
        _pump(chunks, svc, request, query, fmt, result), media_type=MEDIA[fmt], headers=headers
    )


async def _pump(
    chunks: Iterator[bytes], svc, request: Request, query: str, fmt: str, result: ExportResult
) -> AsyncIterator[bytes]:
    """Each page is read off the event loop; the end of the export is sealed with its row count."""
    while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
        yield chunk
    await svc.record_read(
        request.state.token, request, "trailseal.export.done", query=query, format=fmt, rows=result.rows
    )


async def _parquet(
    svc, request: Request, query: str, log: str | None, class_uid: int, headers: dict[str, str]
) -> Response:
    """One class as one Parquet file, written to a temporary directory and streamed from there."""
    directory = Path(tempfile.mkdtemp(prefix="trailseal-export-"))
    try:
        result = await asyncio.to_thread(
            export_to, svc.trail, query, "ocsf-parquet", directory / "out", log, None, class_uid
        )
    except (ExportError, QueryError) as exc:
        shutil.rmtree(directory, ignore_errors=True)
        raise ApiError(400, str(exc)) from None
    await svc.record_read(
        request.state.token,
        request,
        "trailseal.export.done",
        query=query,
        format="ocsf-parquet",
        rows=result.rows,
    )
    return FileResponse(
        result.files[0],
        media_type=MEDIA["ocsf-parquet"],
        headers=headers,
        background=BackgroundTask(shutil.rmtree, directory, ignore_errors=True),
    )


@requires("audit")
async def export_bundle(request: Request) -> Response:
    from trailseal.query.bundle import write_bundle

    svc = service(request)
    query, log = _params(request, {"q", "log"})
    directory = Path(tempfile.mkdtemp(prefix="trailseal-bundle-"))
    path = directory / "evidence.zip"
    try:
        result = await asyncio.to_thread(
            write_bundle, svc.trail, query, path, log, f"token:{request.state.token.id}"
        )
    except (ExportError, QueryError) as exc:
        shutil.rmtree(directory, ignore_errors=True)
        raise ApiError(400, str(exc)) from None
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    headers = {
        "Content-Disposition": 'attachment; filename="evidence.zip"',
        "X-Trailseal-Events": str(result.events),
        "X-Trailseal-Manifest-Sha256": result.manifest_sha256,
    }
    return FileResponse(
        path,
        media_type="application/zip",
        headers=headers,
        background=BackgroundTask(shutil.rmtree, directory, ignore_errors=True),
    )


routes = [
    Route("/v1/export", export_events, methods=["GET"]),
    Route("/v1/export/bundle", export_bundle, methods=["GET"]),
]
