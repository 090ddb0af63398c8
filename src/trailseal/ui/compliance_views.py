"""Console pages for compliance: the report per framework (HTML, JSON download) and validation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from trailseal.api.common import ApiError, json_response, service
from trailseal.report import FRAMEWORKS, ReportError, build_report
from trailseal.report.render import to_dict, to_html, to_pdf
from trailseal.ui.web import HEADERS, html, page, record


def _default_period() -> str:
    year = datetime.now(UTC).year
    return f"{year}-01-01..{year}-12-31"


async def _build(request: Request):
    params = request.query_params
    key, period = params.get("framework", "pci-dss"), params.get("period") or _default_period()
    try:
        built = await asyncio.to_thread(build_report, service(request).trail, key, period,
                                        verify=params.get("verify", "1") != "0")
    except ReportError as exc:
        raise ApiError(400, str(exc)) from None
    await record(request, "report", framework=key, period=period)
    return built, key, period


@page("audit")
async def report(request: Request) -> Response:
    if "framework" not in request.query_params:
        return html(request, "report.html", title="Compliance report", current="report", report=None,
                    frameworks=FRAMEWORKS, framework="pci-dss", period=_default_period())
    built, key, period = await _build(request)
    return html(request, "report.html", title="Compliance report", current="report", report=built,
                frameworks=FRAMEWORKS, framework=key, period=period)


@page("audit")
async def report_json(request: Request) -> Response:
    built, key, _ = await _build(request)
    return json_response(to_dict(built), headers={
        **HEADERS, "Content-Disposition": f'attachment; filename="trailseal-{key}-report.json"'})


@page("audit")
async def report_html(request: Request) -> Response:
    built, key, _ = await _build(request)
    headers = {**HEADERS, "Content-Security-Policy": HEADERS["Content-Security-Policy"].replace(
        "style-src 'self'", "style-src 'unsafe-inline'"),
        "Content-Disposition": f'attachment; filename="trailseal-{key}-report.html"'}
    return Response(to_html(built), 200, headers, media_type="text/html")


@page("audit")
async def report_pdf(request: Request) -> Response:
    """The HTML report printed by headless Chromium on the server (as `trailseal report --format pdf`)."""
    built, key, _ = await _build(request)
    try:
        body = await asyncio.to_thread(to_pdf, built)
    except ReportError as exc:
        raise ApiError(503, str(exc)) from None
    return Response(body, 200, {**HEADERS, "Content-Disposition": f'attachment; filename="trailseal-{key}-report.pdf"'},
                    media_type="application/pdf")


@page("read")
async def validate_page(request: Request) -> Response:
    from trailseal.validate import last_validation

    await record(request, "validate")
    state = last_validation(service(request).trail)
    return html(request, "validate.html", title="Validate", current="validate", validation=state)


@page("audit")
async def validate_now(request: Request) -> Response:
    from trailseal.validate import last_validation

    trail = service(request).trail
    try:
        await asyncio.to_thread(last_validation(trail).run, trail)
    except Exception as exc:  # noqa: BLE001 - shown on the page, which says what failed
        raise ApiError(500 if not isinstance(exc, ValueError) else 400, f"validation could not run: {exc}") from None
    return RedirectResponse("/ui/validate", 303, HEADERS)
