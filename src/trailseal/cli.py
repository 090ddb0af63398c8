"""The `trailseal` command line. Every command has --help; errors say what to do next."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Annotated, BinaryIO

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from trailseal import config as cfg
from trailseal.datadir import DataDirError, Trail
from trailseal.datadir import init as init_data_dir
from trailseal.event import EventError, json_schema, parse_json
from trailseal.ledger import LedgerError, Verifier
from trailseal.ledger.proof import verify_proof
from trailseal.pipeline import Overloaded
from trailseal.store.base import StoreError

app = typer.Typer(help="trailseal: audit-ready access logs, sealed in a verifiable Merkle log.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False)

DataOpt = Annotated[Path | None, typer.Option("--data", "-d", help="Data dir (default $TRAILSEAL_DATA or "
                                                                   "./trailseal-data).", show_default=False)]
LogOpt = Annotated[str, typer.Option("--log", "-l", help="Which log (ledger).")]

BATCH = 1000
IN_FLIGHT = 8


class Failure(Exception):
    """A user-facing error: printed without a traceback, exit code 2."""


def fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(2)


def open_trail(data: Path | None) -> Trail:
    try:
        return Trail(data)
    except (DataDirError, cfg.ConfigError, StoreError) as exc:
        fail(str(exc))
        raise


@app.command()
def init(data: DataOpt = None,
         origin: Annotated[str | None, typer.Option(help="Key and checkpoint origin name "
                                                         "(default: <hostname>.trailseal).")] = None,
         store: Annotated[str, typer.Option(help="'sqlite:<file>' or 'postgresql://...'.")] = "sqlite:trailseal.db",
         ) -> None:
    """Create a data dir: config, Ed25519 signing key (mode 0600) and an empty store."""
    try:
        path = init_data_dir(data, origin=origin, store=store)
    except (DataDirError, cfg.ConfigError, StoreError) as exc:
        fail(str(exc))
    out.print(f"initialized [bold]{path}[/]")
    out.print("verifier key of log 'default' (`trailseal vkey --log NAME` for others):")
    with Trail(path) as trail:
        out.print(trail.vkey("default"), markup=False)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the event (schema v1)."""
    out.print_json(json.dumps(json_schema()))


def _lines(stream: BinaryIO, progress: Progress | None, task) -> Iterator[bytes]:
    for line in stream:
        if progress is not None:
            progress.advance(task, len(line))
        yield line


def _progress(total: int | None) -> Progress:
    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                    TaskProgressColumn(), TimeRemainingColumn(), console=err, transient=True,
                    disable=total is None or not err.is_terminal)


@app.command()
def ingest(file: Annotated[str, typer.Argument(help="NDJSON file of events, or - for stdin.")],
           data: DataOpt = None) -> None:
    """Seal an NDJSON stream of events. Bad lines are reported (line number, field, reason) and
    skipped; good ones are still sealed. Exit 1 if any line was rejected."""
    trail = open_trail(data)
    stream = sys.stdin.buffer if file == "-" else _open_input(file)
    total = None if file == "-" else Path(file).stat().st_size
    sealed = rejected = duplicates = 0
    pending: list[Future] = []
    batch = []
    try:
        with _progress(total) as progress:
            task = progress.add_task("sealing", total=total)
            for number, line in enumerate(_lines(stream, progress, task), 1):
                if not line.strip():
                    continue
                try:
                    batch.append(parse_json(line.rstrip(b"\r\n"), trail.clock()))
                except EventError as exc:
                    rejected += 1
                    err.print(f"line {number}: {exc}", markup=False)
                if len(batch) >= BATCH:
                    pending.append(_submit(trail, batch))
                    batch = []
                while len(pending) > IN_FLIGHT:
                    sealed, duplicates = _collect(pending.pop(0), sealed, duplicates)
            if batch:
                pending.append(_submit(trail, batch))
            for future in pending:
                sealed, duplicates = _collect(future, sealed, duplicates)
    except (DataDirError, StoreError, LedgerError) as exc:
        fail(str(exc))
    finally:
        trail.close()
    out.print(f"sealed {sealed} events ({duplicates} already sealed), rejected {rejected}")
    raise typer.Exit(1 if rejected else 0)


def _open_input(file: str) -> BinaryIO:
    try:
        return open(file, "rb")  # noqa: SIM115 - closed at process exit
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
        raise


def _submit(trail: Trail, batch) -> Future:
    while True:
        try:
            return trail.sealer.submit(batch)
        except Overloaded:
            import time

            time.sleep(0.01)


def _collect(future: Future, sealed: int, duplicates: int) -> tuple[int, int]:
    receipts = future.result()
    fresh = len({(r.log, r.index) for r in receipts})
    return sealed + fresh, duplicates + len(receipts) - fresh


@app.command()
def checkpoint(data: DataOpt = None, log: LogOpt = "default") -> None:
    """Print the latest signed checkpoint (C2SP tlog-checkpoint in a signed note)."""
    trail = open_trail(data)
    note = trail.checkpoint(log)
    trail.close()
    if note is None:
        fail(f"log {log!r} has no checkpoint yet: seal some events first (`trailseal ingest`)")
    sys.stdout.write(note)


@app.command()
def vkey(data: DataOpt = None, log: LogOpt = "default") -> None:
    """Print the verifier key (C2SP note vkey) that checks a log's checkpoints."""
    trail = open_trail(data)
    print(trail.vkey(log))
    trail.close()


@app.command()
def prove(index: Annotated[int, typer.Argument(help="Entry index in the log.")],
          data: DataOpt = None, log: LogOpt = "default") -> None:
    """Print a C2SP tlog-proof that entry INDEX is in the log's latest checkpoint."""
    trail = open_trail(data)
    try:
        sys.stdout.write(trail.prove(index, log))
    except (IndexError, StoreError, LedgerError) as exc:
        fail(str(exc))
    finally:
        trail.close()


@app.command()
def entry(index: Annotated[int, typer.Argument(help="Entry index in the log.")],
          data: DataOpt = None, log: LogOpt = "default") -> None:
    """Print the sealed bytes of one entry (what `verify --entry` takes)."""
    trail = open_trail(data)
    try:
        sys.stdout.buffer.write(trail.entry(index, log))
    except IndexError as exc:
        fail(str(exc))
    finally:
        trail.close()


@app.command()
def verify(data: DataOpt = None,
           log: Annotated[str | None, typer.Option("--log", "-l", help="Only this log.")] = None,
           checkpoint_file: Annotated[Path | None, typer.Option(
               "--checkpoint", help="An older signed checkpoint the log must still extend.")] = None,
           proof: Annotated[Path | None, typer.Option(help="Offline: a C2SP tlog-proof file.")] = None,
           vkey_: Annotated[str | None, typer.Option("--vkey", help="Offline: verifier key text or file.")] = None,
           entry_file: Annotated[Path | None, typer.Option("--entry", help="Offline: the entry's bytes.")] = None,
           ) -> None:
    """Re-hash every entry, rebuild every tile and root, check every checkpoint signature; name the
    first bad index. With --proof/--vkey/--entry, check one tlog-proof offline (no data dir)."""
    if proof or entry_file:
        _verify_offline(proof, vkey_, entry_file)
        return
    trail = open_trail(data)
    trusted = _read(checkpoint_file) if checkpoint_file else None
    try:
        with _progress(1) as progress:
            task = progress.add_task("verifying", total=None)
            reports = trail.verify(log, trusted=trusted,
                                   progress=lambda done, total: progress.update(task, completed=done, total=total))
    except StoreError as exc:
        fail(str(exc))
    finally:
        trail.close()
    if not reports:
        fail("nothing to verify: the data dir has no logs yet")
    for report in reports:
        (out if report.ok else err).print(report.summary(), markup=False)
    raise typer.Exit(0 if all(r.ok for r in reports) else 1)


def _read(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {path}: {exc}")
        raise


def _verify_offline(proof: Path | None, vkey_text: str | None, entry_file: Path | None) -> None:
    if not (proof and vkey_text and entry_file):
        fail("offline verification needs all of --proof FILE --vkey KEY --entry FILE")
    key = _read(Path(vkey_text)).strip() if Path(vkey_text).is_file() else vkey_text.strip()
    try:
        verifier = Verifier.from_vkey(key)
        checkpoint_ = verify_proof(_read(proof), entry_file.read_bytes(), [verifier])
    except (LedgerError, ValueError) as exc:
        err.print(f"proof FAILED: {exc}", markup=False)
        raise typer.Exit(1) from None
    out.print(f"proof OK: the entry is in {checkpoint_.origin} at tree size {checkpoint_.size}", markup=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
