"""`trailseal export`: the events a query matches as JSONL, CSV, OCSF, ECS, or an evidence bundle."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

FORMAT_HELP = (
    "jsonl | csv | ocsf | ocsf-parquet | ecs (ocsf and ocsf-parquet write one file per class into --out)"
)


def register(app: typer.Typer) -> None:
    app.command("export")(export_cmd)


def export_cmd(
    query: Annotated[
        str, typer.Argument(help="The query, e.g. 'actor:alice since:30d' ('' for everything).")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="File (directory for OCSF) to write; - for stdout.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help=FORMAT_HELP)] = "jsonl",
    bundle: Annotated[
        Path | None,
        typer.Option(
            "--bundle",
            help="Write an offline-verifiable evidence bundle (zip) instead; check it with "
            "`trailseal verify BUNDLE`.",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", "-d", help="Data dir (default $TRAILSEAL_DATA or ./trailseal-data).", show_default=False
        ),
    ] = None,
    log: Annotated[str | None, typer.Option("--log", "-l", help="Only this log.")] = None,
) -> None:
    """Export the events a query matches (newest first), streaming, with a progress bar. Every export
    is sealed in the `trailseal` meta log (who, query, format, rows)."""
    from trailseal.cli import fail, open_trail
    from trailseal.query.export import ExportError, check_format

    if bundle is None and out is None:
        fail("give --out PATH (or --bundle FILE.zip for an evidence bundle)")
    if bundle is not None and out is not None:
        fail("give either --out (an export) or --bundle (an evidence bundle), not both")
    try:
        check_format(fmt)
    except ExportError as exc:
        fail(str(exc))
    trail = open_trail(data)
    try:
        _take_writer(
            trail, "/v1/export/bundle?q=..." if bundle is not None else f"/v1/export?q=...&format={fmt}"
        )
        if bundle is not None:
            _bundle(trail, query, bundle, log)
        elif str(out) == "-":
            _to_stdout(trail, query, fmt, log)
        else:
            _export(trail, query, fmt, out, log)
    finally:
        trail.close()


def _to_stdout(trail, query: str, fmt: str, log: str | None) -> None:
    """`--out -`: a line format to standard output (for pipes: jq, grep, another tool)."""
    import sys

    from trailseal.cli import err, fail
    from trailseal.query import QueryError
    from trailseal.query.export import ExportError, ExportResult, export_event, stream

    result = ExportResult()
    try:
        for chunk in stream(trail, query, fmt, log, counter=result):
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
    except QueryError as exc:
        fail(f"query: {exc}")
    except ExportError as exc:
        fail(f"{exc} (`--out -` takes jsonl, csv, ocsf or ecs)")
    _seal(trail, export_event(_who(), query, fmt, result.rows, trail.clock(), log=log))
    err.print(f"exported {result.rows} events as {fmt}", markup=False)


def _who() -> str:
    return f"cli:{os.environ.get('USER', 'unknown')}"


def _export(trail, query: str, fmt: str, out: Path, log: str | None) -> None:
    from trailseal.cli import _progress, err, fail
    from trailseal.cli import out as console
    from trailseal.query import QueryError
    from trailseal.query.export import ExportError, export_event, export_to

    try:
        with _progress(1) as progress:
            task = progress.add_task(f"exporting {fmt}", total=None)
            result = export_to(
                trail, query, fmt, out, log, lambda rows: progress.update(task, completed=rows)
            )
        _seal(trail, export_event(_who(), query, fmt, result.rows, trail.clock(), log=log))
    except QueryError as exc:
        fail(f"query: {exc}")
    except ExportError as exc:
        fail(str(exc))
    for path in result.files:
        err.print(f"wrote {path}", markup=False)
    classes = ", ".join(f"{uid}: {count}" for uid, count in result.classes.items())
    console.print(
        f"exported {result.rows} events as {fmt}" + (f" (OCSF classes {classes})" if classes else ""),
        markup=False,
    )


def _bundle(trail, query: str, path: Path, log: str | None) -> None:
    from trailseal.cli import _progress, fail
    from trailseal.cli import out as console
    from trailseal.datadir import DataDirError
    from trailseal.query import QueryError
    from trailseal.query.bundle import write_bundle
    from trailseal.query.export import ExportError

    try:
        with _progress(1) as progress:
            task = progress.add_task("bundling", total=None)
            result = write_bundle(
                trail,
                query,
                path,
                log,
                _who(),
                lambda done, total: progress.update(task, completed=done, total=total),
            )
    except QueryError as exc:
        fail(f"query: {exc}")
    except (ExportError, DataDirError) as exc:
        fail(str(exc))
    logs = ", ".join(f"{name}: {count}" for name, count in result.logs.items()) or "none"
    console.print(
        f"wrote {path}: {result.events} events ({logs}); manifest SHA-256 {result.manifest_sha256} "
        "sealed in the trailseal log. Check it with `trailseal verify " + str(path) + "`",
        markup=False,
    )


def _take_writer(trail, route: str) -> None:
    """Every export is sealed in the meta log, so it needs the data dir's writer; say what to do if a
    server holds it."""
    from trailseal.cli import fail
    from trailseal.datadir import DataDirError

    try:
        trail.sealer  # noqa: B018 - takes the writer lock
    except DataDirError as exc:
        fail(
            f"{exc}. Exports are sealed in the meta log, so ask the running server instead (GET {route}) "
            "or stop it first"
        )


def _seal(trail, event: dict) -> None:
    trail.append([event])


def verify_bundle_cli(path: Path, vkeys: list[str]) -> None:
    """`trailseal verify BUNDLE.zip`: check an evidence bundle offline; exit 1 naming every bad file."""
    from trailseal.cli import err, fail, out
    from trailseal.ledger import LedgerError, Verifier
    from trailseal.query.bundle_check import BundleError, verify_bundle

    trusted = None
    if vkeys:
        try:
            trusted = [Verifier.from_vkey(line) for text in vkeys for line in _key_text(text).split()]
        except (LedgerError, ValueError) as exc:
            fail(f"--vkey: {exc}")
    try:
        report = verify_bundle(path, trusted)
    except BundleError as exc:
        fail(str(exc))
    for problem in report.problems:
        err.print(f"FAILED {problem}", markup=False)
    if not report.ok:
        err.print(f"bundle {path}: {len(report.problems)} problem(s); do not rely on it", markup=False)
        raise typer.Exit(1)
    out.print(
        f"bundle OK: {report.events} events proven against {report.checkpoints} signed checkpoints "
        f"(query {report.query!r})",
        markup=False,
    )
    for vkey in report.keys:
        out.print(
            f"  signed by {vkey}" + ("" if trusted else "  (from the bundle: compare with the operator's)"),
            markup=False,
        )


def _key_text(text: str) -> str:
    path = Path(text)
    return path.read_text().strip() if path.is_file() else text.strip()
