"""Console pages for operations: sources and their health, alerts (with acknowledgement), the
integrity of each log, and charts of volume and failure rate."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from trailseal.api.common import ApiError, service
from trailseal.event import from_dict
from trailseal.ui.alerts import ACK_ACTION, is_alert, read_alerts
from trailseal.ui.live import live_stats
from trailseal.ui.templating import render
from trailseal.ui.web import HEADERS, html, is_fragment, page, read_form, record, record_changed


def _sources_context(request: Request) -> dict:
    svc = service(request)
    stats = live_stats(svc)
    now = time.time()
    threshold = svc.config.alerts.silent_after_seconds
    token = request.state.token
    rows = [{"source": s, "series": s.per_minute(now), "silent": now - s.last_seen > threshold,
             "quiet_for": int(now - s.last_seen)}
            for s in stats.snapshot_sources() if token.allows_log(s.log)]
    return {"rows": rows, "threshold": threshold, "ready": stats.ready.is_set(), "backfilled": stats.backfilled}


@page("read")
async def sources(request: Request) -> Response:
    context = _sources_context(request)
    if is_fragment(request):
        body = render("_sources.html", **context)
        await record_changed(request, "sources", body, rows=len(context["rows"]))
        return HTMLResponse(body, 200, HEADERS)
    await record(request, "sources", rows=len(context["rows"]))
    return html(request, "sources.html", title="Sources", current="sources", **context)


@page("read")
async def alerts(request: Request) -> Response:
    svc = service(request)
    found = await asyncio.to_thread(read_alerts, svc.trail, request.state.token)
    context = {"open": [a for a in found if not a["ack"]], "acked": [a for a in found if a["ack"]]}
    if is_fragment(request):
        body = render("_alerts.html", csrf=request.state.session.csrf, **context)
        await record_changed(request, "alerts", body, rows=len(found))
        return HTMLResponse(body, 200, HEADERS)
    await record(request, "alerts", rows=len(found))
    return html(request, "alerts.html", title="Alerts", current="alerts", **context)


@page("read")
async def acknowledge(request: Request) -> Response:
    """Seal `trailseal.alert.ack` for one alert (who, when, an optional note)."""
    svc = service(request)
    raw = request.path_params["index"]
    if not raw.isdecimal() or not await asyncio.to_thread(is_alert, svc.trail, int(raw)):
        raise ApiError(404, f"no alert #{raw[:20]}")
    form = await read_form(request)
    note = str(form.get("note") or "")[:500]
    token = request.state.token
    event = {"log": "trailseal", "time": svc.trail.clock(), "category": "admin", "action": ACK_ACTION,
             "outcome": "success",
             "actor": {"id": f"token:{token.id}", "name": token.name, "type": "service", "roles": [token.role]},
             "source": {"component": "trailseal-ui", "kind": "trailseal", "format": "trailseal"},
             "target": {"type": "alert", "id": raw}, "attributes": {"note": note} if note else {}}
    await svc.seal([from_dict(event, svc.trail.clock())])
    return RedirectResponse("/ui/alerts", 303, HEADERS)


@page("read")
async def integrity(request: Request) -> Response:
    from trailseal.report.build import checkpoint_states
    from trailseal.validate import last_validation

    svc = service(request)
    token = request.state.token
    watch = svc.extras.get("integrity")
    states = await asyncio.to_thread(checkpoint_states, svc.trail)
    logs = [{"info": info, "checkpoint_problem": states.get(info.name),
             "watch": watch.states.get(info.name) if watch else None}
            for info in svc.trail.logs() if token.allows_log(info.name)]
    await record(request, "integrity", logs=len(logs))
    return html(request, "integrity.html", title="Integrity", current="integrity", logs=logs,
                watching=watch is not None, validation=last_validation(svc.trail))


@page("read")
async def charts(request: Request) -> Response:
    stats = live_stats(service(request))
    now = time.time()
    minutes = stats.series(now, 60, 1)
    hours = stats.series(now, 24 * 60, 60)
    context = {
        "minute_values": [e for _, e, _ in minutes], "minute_labels": [_label(m) for m, _, _ in minutes],
        "hour_values": [e for _, e, _ in hours], "hour_labels": [_label(m) for m, _, _ in hours],
        "hour_failure_rate": [100.0 * f / e if e else 0.0 for _, e, f in hours],
        "minute_failures": [f for _, _, f in minutes], "ready": stats.ready.is_set(),
    }
    await record(request, "charts")
    return html(request, "charts.html", title="Charts", current="charts", **context)


def _label(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, UTC).strftime("%H:%M")
