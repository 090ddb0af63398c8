"""The web console at /ui (server-rendered; see docs/UI.md)."""

from __future__ import annotations

from pathlib import Path

from starlette.responses import RedirectResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from trailseal.ui import auth_views, compliance_views, event_views, ops_views

STATIC = Path(__file__).resolve().parent / "static"


async def home(request):
    return RedirectResponse("/ui/stream", 303)


routes: list = [
    Mount("/ui", routes=[
        Route("/", home, methods=["GET"]),
        Route("/login", auth_views.login_form, methods=["GET"]),
        Route("/login", auth_views.login, methods=["POST"]),
        Route("/logout", auth_views.logout, methods=["POST"]),
        Route("/stream", event_views.stream, methods=["GET"]),
        Route("/stream/rows", event_views.stream_rows, methods=["GET"]),
        Route("/search", event_views.search, methods=["GET"]),
        Route("/searches", event_views.save_search, methods=["POST"]),
        Route("/searches/{search_id}/delete", event_views.delete_search, methods=["POST"]),
        Route("/events/{log}/{index}", event_views.event_detail, methods=["GET"]),
        Route("/timeline", event_views.timeline, methods=["GET"]),
        Route("/sources", ops_views.sources, methods=["GET"]),
        Route("/alerts", ops_views.alerts, methods=["GET"]),
        Route("/alerts/{index}/ack", ops_views.acknowledge, methods=["POST"]),
        Route("/integrity", ops_views.integrity, methods=["GET"]),
        Route("/charts", ops_views.charts, methods=["GET"]),
        Route("/report", compliance_views.report, methods=["GET"]),
        Route("/report.json", compliance_views.report_json, methods=["GET"]),
        Route("/report.html", compliance_views.report_html, methods=["GET"]),
        Route("/report.pdf", compliance_views.report_pdf, methods=["GET"]),
        Route("/validate", compliance_views.validate_page, methods=["GET"]),
        Route("/validate", compliance_views.validate_now, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="ui-static"),
    ]),
]
