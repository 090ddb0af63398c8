"""GET /v1/alerts: the alerts raised, newest first (they are sealed `finding` events)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from trailseal.alerts.service import ALERT_ACTION
from trailseal.api.common import json_response, requires, service
from trailseal.api.read import decode_cursor, encode_cursor, parse_limit
from trailseal.store.base import Cursor, Filters


@requires("read")
async def list_alerts(request: Request) -> Response:
    svc = service(request)
    limit = parse_limit(request)
    rows = svc.trail.store.select(["trailseal"], Filters(action_prefix=ALERT_ACTION),
                                  decode_cursor(request.query_params.get("cursor")), limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    alerts = svc.trail.read_events([(log, index, data) for log, index, _, data in rows])
    cursor = encode_cursor(Cursor(rows[-1][2], rows[-1][0], rows[-1][1])) if more else None
    await svc.record_read(request.state.token, request, "trailseal.alerts.read", rows=len(alerts))
    return json_response({"alerts": alerts, "next_cursor": cursor})


routes = [Route("/v1/alerts", list_alerts, methods=["GET"])]
