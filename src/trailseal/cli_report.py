"""`trailseal report` (compliance evidence per framework) and `trailseal validate` (the same checks now)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

FORMATS = ("html", "json", "pdf")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
    app.command("validate")(validate)


def report(framework: Annotated[str, typer.Option(
               "--framework", "-f", help="pci-dss | hipaa | soc2 | nist-800-53 | gdpr | iso27001")],
           period: Annotated[str, typer.Option(help="YYYY-MM-DD..YYYY-MM-DD, both days included.")],
           data: Annotated[Path | None, typer.Option("--data", "-d", help="Data dir (default $TRAILSEAL_DATA or "
                                                     "./trailseal-data).", show_default=False)] = None,
           format_: Annotated[str, typer.Option("--format", help="html | json | pdf")] = "html",
           output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default stdout; "
                                                       "pdf needs a file).")] = None,
           verify: Annotated[bool, typer.Option(help="Re-hash every log for the integrity controls.")] = True,
           ) -> None:
    """A compliance report: each control's status computed from the measured state of the logs.

    Exit status 0 when every control passes, 1 when any fails or has a gap, 2 on a usage error.
    """
    from trailseal.cli import _progress, fail, open_trail
    from trailseal.report import ReportError, build_report
    from trailseal.report.build import framework as pick
    from trailseal.report.build import parse_period
    from trailseal.report.render import to_dict, to_html, to_pdf

    if format_ not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}")
    if format_ == "pdf" and output is None:
        fail("--format pdf writes a file: add --output report.pdf")
    try:
        pick(framework)
        parse_period(period)
    except ReportError as exc:
        fail(str(exc))
    trail = open_trail(data)
    try:
        total = sum(info.size for info in trail.logs())
        with _progress(total) as bar:
            task = bar.add_task("measuring", total=total)
            built = build_report(trail, framework, period, verify=verify,
                                 progress=lambda n: bar.advance(task, n))
        if format_ == "json":
            body: bytes = (json.dumps(to_dict(built), indent=2) + "\n").encode()
        elif format_ == "html":
            body = to_html(built).encode()
        else:
            body = to_pdf(built)
        _record(trail, built, format_)
    except ReportError as exc:
        fail(str(exc))
    finally:
        trail.close()
    _write(body, output)
    _summary(built)
    raise typer.Exit(0 if built.ok else 1)


def _record(trail, built, format_: str) -> None:
    """Producing a report reads the logs: seal that in the meta log like any other read."""
    from trailseal.event import from_dict

    event = {"log": "trailseal", "time": trail.clock(), "category": "data_access", "action": "trailseal.report",
             "outcome": "success", "actor": {"id": "cli", "name": "cli", "type": "service"},
             "source": {"component": "trailseal-cli", "kind": "trailseal", "format": "trailseal"},
             "attributes": {"framework": built.framework.key, "since": built.since, "until": built.until,
                            "format": format_}}
    trail.sealer.seal([from_dict(event, trail.clock())])


def _write(body: bytes, output: Path | None) -> None:
    if output is None:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    else:
        output.write_bytes(body)


def _summary(built) -> None:
    from trailseal.cli import err

    counts = built.counts()
    err.print(f"{built.framework.title}: [green]{counts['pass']} pass[/], [red]{counts['fail']} fail[/], "
              f"[yellow]{counts['gap']} gap[/]")
    for control in built.controls:
        if control.status != "pass":
            err.print(f"  {control.status.upper():4} {control.control.id}: {escape('; '.join(control.reasons)[:300])}")


def validate(data: Annotated[Path | None, typer.Option("--data", "-d", help="Data dir (default $TRAILSEAL_DATA "
                                                       "or ./trailseal-data).", show_default=False)] = None,
             as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
             record_run: Annotated[bool, typer.Option("--record/--no-record", help="Seal the run in the meta "
                                                      "log (failed checks raise alerts).")] = True) -> None:
    """Run the compliance checks now (conformance, expected sources, fields, integrity, retention, clock,
    silent sources) over the compliance section's `validate_window` (default 24h). Exit status 1 when any
    check fails; a gap (nothing to measure, e.g. no expected sources declared) does not fail."""
    from trailseal.cli import _progress, err, fail, open_trail
    from trailseal.retention import RetentionError
    from trailseal.validate import record, run_validation

    trail = open_trail(data)
    try:
        total = sum(info.size for info in trail.logs())
        with _progress(total) as bar:
            task = bar.add_task("validating", total=total)
            result = run_validation(trail, progress=lambda n: bar.advance(task, n))
        if record_run:
            record(trail, result, by="cli")
    except RetentionError as exc:
        fail(f"[compliance] validate_window: {exc}")
    finally:
        trail.close()
    if as_json:
        print(json.dumps({"ok": result.ok, "window": result.window, "started": result.started,
                          "checks": [vars(r) for r in result.results]}, indent=2))
    for r in result.results:
        colour = {"pass": "green", "fail": "red", "gap": "yellow"}[r.status]
        err.print(f"[{colour}]{r.status.upper():4}[/] {r.name}: {escape(r.reason)}")
    raise typer.Exit(0 if result.ok else 1)
