"""A report as JSON (for machines), HTML (for assessors) and PDF (HTML printed by headless Chromium)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from trailseal.report.build import Report, ReportError

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def to_dict(report: Report) -> dict[str, Any]:
    m = report.measurements
    return {
        "framework": report.framework.key, "title": report.framework.title,
        "period": {"since": report.since, "until": report.until}, "generated": report.generated,
        "origin": report.origin, "summary": report.counts(), "ok": report.ok,
        "controls": [{"id": c.control.id, "title": c.control.title, "status": c.status, "reasons": c.reasons,
                      "checks": {name: {"status": f.status, "reason": f.reason, "evidence": f.evidence}
                                 for name, f in c.findings.items()}} for c in report.controls],
        "measured": {
            "events": m.events, "logs": m.logs, "rejected": m.rejected, "erasures": m.erasures,
            "sources": [{"log": s.log, "component": s.component, "kind": s.kind, "events": s.events,
                         "failures": s.failures, "first_received": s.first_received,
                         "last_received": s.last_received, "categories": dict(s.categories),
                         "fields": dict(s.fields), "clock_skew_p99_seconds": round(s.skew_p99(), 3)}
                        for s in m.sources.values()],
            "reads": [{"reader": r, "action": a, "count": n} for (r, a), n in sorted(m.reads.items())],
            "alerts": len([a for a in m.alerts if a["in_period"]]), "acknowledged": len(m.acks),
            "validations": m.validations[-20:],
        },
    }


def to_html(report: Report, *, standalone: bool = True) -> str:
    from trailseal.ui.templating import render

    return render("report_page.html" if standalone else "report_body.html", report=report, standalone=standalone,
                  css=css() if standalone else "")


def css() -> str:
    return (Path(__file__).resolve().parents[1] / "ui" / "static" / "app.css").read_text("utf-8")


def find_chromium() -> str | None:
    return next((found for name in CHROMIUM_CANDIDATES if (found := shutil.which(name))), None)


def to_pdf(report: Report, timeout: float = 120.0) -> bytes:
    """Print the HTML report with headless Chromium (Debian's `chromium`); no other dependency."""
    browser = find_chromium()
    if browser is None:
        raise ReportError("PDF needs Chromium: install it (Debian: apt-get install chromium) or use --format html")
    with tempfile.TemporaryDirectory(prefix="trailseal-report-") as tmp:
        page, pdf = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        page.write_text(to_html(report), "utf-8")
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                   f"--user-data-dir={tmp}/profile", f"--print-to-pdf={pdf}", page.as_uri()]
        try:
            done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise ReportError(f"Chromium did not print the PDF within {timeout:g}s") from None
        if not pdf.exists() or pdf.stat().st_size == 0:
            raise ReportError(f"Chromium failed to print the PDF: {done.stderr.decode(errors='replace')[-500:]}")
        return pdf.read_bytes()
