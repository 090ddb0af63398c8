"""The `trailseal` command line. Every command has --help; errors say what to do next."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Annotated, BinaryIO

import msgspec
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from trailseal import config as cfg
from trailseal.datadir import DataDirError, Trail
from trailseal.datadir import init as init_data_dir
from trailseal.event import json_schema
from trailseal.ledger import LedgerError, Verifier
from trailseal.ledger.proof import verify_proof
from trailseal.pipeline import Overloaded
from trailseal.prepare_pool import seal_lines
from trailseal.store.base import StoreError

app = typer.Typer(help="trailseal: audit-ready access logs, sealed in a verifiable Merkle log.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)  # piped output: one line stays one line

DataOpt = Annotated[Path | None, typer.Option("--data", "-d", help="Data dir (default $TRAILSEAL_DATA or "
                                                                   "./trailseal-data).", show_default=False)]
LogOpt = Annotated[str, typer.Option("--log", "-l", help="Which log (ledger).")]

BATCH = 1000
IN_FLIGHT = 8
POOL_FILE_BYTES = 1 << 20  # `ingest` of a file this big starts the prepare workers before its first batch


def fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}")
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
    if total is not None and total >= POOL_FILE_BYTES:
        trail.pool.start()  # ~0.5 s, then the workers prepare while this process seals
    sealed = rejected = duplicates = 0
    pending: list[Future] = []
    lines, numbers = [], []
    try:
        with _progress(total) as progress:
            task = progress.add_task("sealing", total=total)
            for number, line in enumerate(_lines(stream, progress, task), 1):
                if line.strip():
                    lines.append(line.rstrip(b"\r\n"))
                    numbers.append(number)
                if len(lines) >= BATCH:
                    rejected += _seal_lines(trail, lines, numbers, pending)
                    lines, numbers = [], []
                while len(pending) > IN_FLIGHT:
                    sealed, duplicates = _collect(pending.pop(0), sealed, duplicates)
            if lines:
                rejected += _seal_lines(trail, lines, numbers, pending)
            for future in pending:
                sealed, duplicates = _collect(future, sealed, duplicates)
    except (DataDirError, StoreError, LedgerError) as exc:
        fail(str(exc))
    finally:
        trail.close()
    out.print(f"sealed {sealed} events ({duplicates} already sealed), rejected {rejected}")
    raise typer.Exit(1 if rejected else 0)


def _seal_lines(trail: Trail, lines: list[bytes], numbers: list[int], pending: list[Future]) -> int:
    """Prepare a batch of JSON lines (in the prepare workers when they can take it), report each line
    refused by its number, submit the rest; returns how many were refused."""
    received = trail.clock()  # one arrival time per batch
    pooled = trail.pool.try_prepare_lines(lines, received)
    if pooled is not None:
        batch, refused = pooled
        refused = [(numbers[position], reason) for position, reason in refused]
    else:
        prepared, refused = seal_lines(trail.protection, received, numbers, lines)
        batch = [item for _, item in prepared]
    for number, reason in refused:
        err.print(f"line {number}: {reason}", markup=False)
    if batch:
        pending.append(_submit(trail, batch))
    return len(refused)


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
def vkey(data: DataOpt = None, log: LogOpt = "default",
         all_: Annotated[bool, typer.Option("--all", help="Every key that ever signed (after `keys rotate`), "
                                                          "current first.")] = False) -> None:
    """Print the verifier key (C2SP note vkey) that checks a log's checkpoints."""
    trail = open_trail(data)
    print("\n".join(v.vkey for v in trail.verifiers(log)) if all_ else trail.vkey(log))
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
def verify(bundle: Annotated[Path | None, typer.Argument(
               help="An evidence bundle (.zip from `trailseal export --bundle`) or an archive segment "
                    "(.tseg; or the word `segment` and the file) to check offline.")] = None,
           segment_file: Annotated[Path | None, typer.Argument(
               metavar="[FILE]", help="After `segment`: the segment file.", show_default=False)] = None,
           data: DataOpt = None,
           log: Annotated[str | None, typer.Option("--log", "-l", help="Only this log.")] = None,
           checkpoint_file: Annotated[Path | None, typer.Option(
               "--checkpoint", help="An older signed checkpoint the log must still extend.")] = None,
           proof: Annotated[Path | None, typer.Option(help="Offline: a C2SP tlog-proof file.")] = None,
           vkey_: Annotated[str | None, typer.Option("--vkey", help="Offline: verifier key text or file.")] = None,
           entry_file: Annotated[Path | None, typer.Option("--entry", help="Offline: the entry's bytes.")] = None,
           key_file: Annotated[Path | None, typer.Option(help="Offline, a segment: the archive master keys "
                                                              "('<id> <base64>' lines; else "
                                                              "$TRAILSEAL_ARCHIVE_KEYS).")] = None,
           ) -> None:
    """Re-hash every entry, rebuild every tile and root, check every checkpoint signature; name the
    first bad index. With --proof/--vkey/--entry, check one tlog-proof offline (no data dir). With
    BUNDLE, check an evidence bundle offline (no data dir; --vkey pins the key you trust). With
    `segment FILE` (or a .tseg file), check one archive segment offline with --vkey and the master key."""
    segment = _segment_to_verify(bundle, segment_file)
    if segment is not None:
        from trailseal.cli_archive import verify_segment_file

        verify_segment_file(segment, [vkey_] if vkey_ else [], key_file, "TRAILSEAL_ARCHIVE_KEYS")
        return
    if segment_file is not None:
        fail(f"unexpected {segment_file}: give one bundle, or `segment` and a segment file")
    if bundle is not None:
        from trailseal.cli_export import verify_bundle_cli

        verify_bundle_cli(bundle, [vkey_] if vkey_ else [])
        return
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


def _segment_to_verify(first: Path | None, second: Path | None) -> Path | None:
    """The segment file `trailseal verify` was given (`segment FILE`, or a file that starts like one)."""
    from trailseal.archive.segment import MAGIC

    if first is None:
        return None
    if str(first) == "segment" and not first.exists():
        if second is None:
            fail("`trailseal verify segment` needs the segment file: trailseal verify segment FILE --vkey V")
        return second
    try:
        with open(first, "rb") as handle:
            return first if handle.read(len(MAGIC)) == MAGIC else None
    except OSError:
        return None  # not a readable file: the bundle check says why


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


# -- server ------------------------------------------------------------------------------------------
ADMIN_TOKEN_FILE = "admin.token"


@app.command()
def serve(data: DataOpt = None,
          host: Annotated[str | None, typer.Option(help="Address to bind (default from config: 127.0.0.1).")] = None,
          port: Annotated[int | None, typer.Option(help="Port (default from config: 8080).")] = None,
          tls_cert: Annotated[Path | None, typer.Option(help="TLS certificate (PEM).")] = None,
          tls_key: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
          tls_client_ca: Annotated[Path | None, typer.Option(
              help="Verify client certificates against this CA (mTLS).")] = None,
          print_admin_token: Annotated[bool, typer.Option(
              help="Create (once) and print an admin token, kept in <data>/admin.token (0600).")] = False,
          role: Annotated[str, typer.Option(
              help="all: one process, embedded (default). Scale-out on a PostgreSQL store + NATS JetStream: "
                   "ingest (HTTP, publishes to the bus), sequencer (seals; one active per log, standbys wait), "
                   "detector (Sigma on the sealed stream), api (read API).")] = "all",
          nats: Annotated[str | None, typer.Option(
              help="NATS URL of the ingest bus (default from [bus] url: nats://127.0.0.1:4222).")] = None,
          log: Annotated[list[str] | None, typer.Option(
              "--log", help="--role sequencer: seal only this log (repeatable); default every log.")] = None,
          node: Annotated[str | None, typer.Option(
              help="This node's name in logs and pg_stat_activity (default host:pid).")] = None,
          ) -> None:
    """Run the HTTP API (ingest, read, tlog tiles, metrics), or one scale-out role (--role)."""
    import ssl

    import uvicorn

    from trailseal.api import create_app
    from trailseal.runtime import tune_gc

    trail = open_trail(data)
    application = _serve_role(trail, role, nats, log, node) if role != "all" else None
    if role != "all" and application is None:
        return  # a sequencer or detector ran here until SIGTERM
    server = trail.config.server
    host, port = host or server.host, port or server.port
    tls_cert = tls_cert or (Path(server.tls_cert) if server.tls_cert else None)
    tls_key = tls_key or (Path(server.tls_key) if server.tls_key else None)
    tls_client_ca = tls_client_ca or (Path(server.tls_client_ca) if server.tls_client_ca else None)
    if application is None:
        try:
            trail.sealer  # take the writer lock now, so a second server fails fast  # noqa: B018
        except (DataDirError, StoreError) as exc:
            fail(str(exc))
        application = create_app(trail)
    if print_admin_token:
        secret = _admin_token(trail, application.state.service.tokens)
        err.print(f"admin token: [bold]{secret}[/]  (kept in {trail.directory / ADMIN_TOKEN_FILE})")
    scheme = "https" if tls_cert else "http"
    err.print(f"trailseal serving {trail.directory} on {scheme}://{host}:{port}  (docs: /openapi.json)")
    tune_gc()
    uvicorn.run(application, host=host, port=port, log_level="warning", timeout_keep_alive=5,
                ssl_certfile=str(tls_cert) if tls_cert else None, ssl_keyfile=str(tls_key) if tls_key else None,
                ssl_ca_certs=str(tls_client_ca) if tls_client_ca else None,
                ssl_cert_reqs=ssl.CERT_REQUIRED if tls_client_ca else ssl.CERT_NONE)


def _serve_role(trail: Trail, role: str, nats: str | None, logs: list[str] | None, node: str | None):
    """A scale-out role: the ASGI app for ingest/api, or run sequencer/detector here until SIGTERM."""
    import logging

    from trailseal.cluster import roles

    try:
        roles.check_role(trail, role)
    except roles.RoleError as exc:
        fail(str(exc))
    if logs and role != "sequencer":
        fail("--log only applies to --role sequencer")
    if nats:
        trail.config.bus.url = nats
    node = node or f"{role}@{roles.default_node()}"
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s {node} %(levelname)s %(message)s")
    if role in roles.HTTP_ROLES:
        from trailseal.api import create_app

        roles.attach_bus(trail, node)
        # syslog listeners and file tails belong to ingest nodes; the cluster's jobs run on one
        # sequencer or detector node (cluster/duties.py)
        return create_app(trail, detect=False, scheduled=False, receivers_on=role == "ingest")
    stop = roles.stop_on_signals()
    err.print(f"trailseal {role} {node}: store {_redacted_store(trail)}, bus {trail.config.bus.url}")
    from trailseal.runtime import tune_gc

    tune_gc()
    if role == "sequencer":
        roles.run_sequencers(trail, sorted(set(logs or ["*"])), node, stop)
    else:
        roles.run_detector(trail, node, stop)
    trail.close()
    return None


def _redacted_store(trail: Trail) -> str:
    from trailseal.store.postgres import _redact

    return _redact(trail.config.store)


def _admin_token(trail: Trail, tokens) -> str:
    path = trail.directory / ADMIN_TOKEN_FILE
    if path.exists():
        secret = path.read_text().strip()
        if tokens.lookup(secret) is not None:
            return secret
        path.unlink()
    secret, _ = tokens.create("admin", "make-run-admin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret


token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")


def _tokens(data: Path | None):
    from trailseal.api.auth import TokenStore

    directory = cfg.data_dir(data)
    if not (directory / cfg.CONFIG_FILE).exists():
        fail(f"{directory} is not a trailseal data dir: run `trailseal init --data {directory}` first")
    return TokenStore(directory)


@token_app.command("create")
def token_create(role: Annotated[str, typer.Option(help="ingest | reader | auditor | admin")],
                 data: DataOpt = None,
                 log: Annotated[list[str] | None, typer.Option(
                     "--log", help="Limit the token to this log (repeatable).")] = None,
                 name: Annotated[str, typer.Option(help="A label for humans.")] = "") -> None:
    """Create a token and print it ONCE; only its SHA-256 is stored."""
    store = _tokens(data)
    try:
        secret, token = store.create(role, name, tuple(log or ()))
    except ValueError as exc:
        fail(str(exc))
    finally:
        store.close()
    err.print(f"token {token.id} ({token.role}{' for ' + ','.join(token.logs) if token.logs else ''}); "
              "store it now, it is not shown again:")
    print(secret)


@token_app.command("list")
def token_list(data: DataOpt = None) -> None:
    """List tokens (ids, roles, logs; never the secrets)."""
    store = _tokens(data)
    for t in store.list():
        print(f"{t.id}  {t.role:<8} {t.name:<20} logs={','.join(t.logs) or '*'}  created={t.created}"
              f"{'  REVOKED' if t.revoked else ''}")
    store.close()


@token_app.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(help="The token id from `token list`.")],
                 data: DataOpt = None) -> None:
    """Revoke a token; requests with it get 401 from then on."""
    store = _tokens(data)
    done = store.revoke(token_id)
    store.close()
    if not done:
        fail(f"no token with id {token_id!r}")
    out.print(f"revoked {token_id}")


UrlOpt = Annotated[str, typer.Option(envvar="TRAILSEAL_URL", help="Server URL ($TRAILSEAL_URL).")]
TokenOpt = Annotated[str | None, typer.Option(envvar="TRAILSEAL_TOKEN", help="API token ($TRAILSEAL_TOKEN).")]


@app.command()
def send(file: Annotated[str, typer.Argument(help="NDJSON file of events, or - for stdin.")],
         url: UrlOpt = "http://127.0.0.1:8080", token: TokenOpt = None,
         batch_size: Annotated[int, typer.Option(help="Events per request.")] = 500) -> None:
    """Send NDJSON events to a server in batches (retrying 429/503 with backoff, honouring Retry-After).
    Exit 1 if any event was rejected."""
    from trailseal.sdk.transport import SendError, Transport

    if not token:
        fail("no token: pass --token or set TRAILSEAL_TOKEN (create one with `trailseal token create`)")
    stream = sys.stdin.buffer if file == "-" else _open_input(file)
    total = None if file == "-" else Path(file).stat().st_size
    transport = Transport(url, token)
    accepted = rejected = 0
    try:
        with _progress(total) as progress:
            task = progress.add_task("sending", total=total)
            for first_line, lines in _batches(_lines(stream, progress, task), batch_size):
                answer = transport.post_ndjson(b"".join(lines))
                accepted += answer.get("accepted", 0)
                rejected += _report_errors(answer, first_line, lines)
    except SendError as exc:
        fail(f"{exc} (sent {accepted} before that)")
    finally:
        transport.close()
    out.print(f"sealed {accepted} events, rejected {rejected}")
    raise typer.Exit(1 if rejected else 0)


def _batches(lines: Iterator[bytes], size: int) -> Iterator[tuple[list[int], list[bytes]]]:
    """Non-blank lines in batches, with each line's number."""
    numbers: list[int] = []
    batch: list[bytes] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        numbers.append(number)
        batch.append(line if line.endswith(b"\n") else line + b"\n")
        if len(batch) >= size:
            yield numbers, batch
            numbers, batch = [], []
    if batch:
        yield numbers, batch


def _report_errors(answer: dict, numbers: list[int], lines: list[bytes]) -> int:
    for error in answer.get("errors", []):
        where = numbers[error["position"]] if error.get("position") is not None else "?"
        field = f"{error['field']}: " if error.get("field") else ""
        err.print(f"line {where}: {field}{error['reason']}", markup=False)
    return len(answer.get("errors", []))


@app.command()
def search(data: DataOpt = None,
           url: Annotated[str | None, typer.Option(envvar="TRAILSEAL_URL",
                                                   help="Ask a server instead of a local data dir.")] = None,
           token: TokenOpt = None,
           log: Annotated[str | None, typer.Option("--log", "-l", help="Only this log.")] = None,
           since: Annotated[str | None, typer.Option(help="RFC 3339 time (inclusive).")] = None,
           until: Annotated[str | None, typer.Option(help="RFC 3339 time (exclusive).")] = None,
           category: Annotated[str | None, typer.Option()] = None,
           action: Annotated[str | None, typer.Option(help="Action or prefix, e.g. user.*")] = None,
           outcome: Annotated[str | None, typer.Option()] = None,
           actor: Annotated[str | None, typer.Option(help="actor.id")] = None,
           target: Annotated[str | None, typer.Option(help="target.id")] = None,
           source: Annotated[str | None, typer.Option(help="source.component")] = None,
           limit: Annotated[int, typer.Option(help="Most events to print.")] = 100) -> None:
    """Print matching events as NDJSON, newest first (from a server with --url, else the data dir)."""
    params = {k: v for k, v in dict(log=log, since=since, until=until, category=category, action=action,
                                    outcome=outcome, actor=actor, target=target, source=source).items() if v}
    if url:
        rows = _search_remote(url, token, params, limit)
    else:
        rows = _search_local(data, params, limit)
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))


def _search_remote(url: str, token: str | None, params: dict, limit: int) -> list[dict]:
    from trailseal.sdk.transport import SendError, Transport

    if not token:
        fail("no token: pass --token or set TRAILSEAL_TOKEN")
    transport = Transport(url, token)
    rows: list[dict] = []
    try:
        cursor = None
        while len(rows) < limit:
            page = transport.get("/v1/events", {**params, "limit": min(1000, limit - len(rows)),
                                                **({"cursor": cursor} if cursor else {})})
            rows.extend(page["events"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
    except SendError as exc:
        fail(str(exc))
    finally:
        transport.close()
    return rows


def _search_local(data: Path | None, params: dict, limit: int) -> list[dict]:
    from trailseal.event import EventError, normalize_time
    from trailseal.store.base import Filters

    trail = open_trail(data)
    try:
        for key in ("since", "until"):
            if key in params:
                params[key] = normalize_time(params[key], key)
        log = params.pop("log", None)
        names = {"action": "action_prefix", "actor": "actor_id", "target": "target_id",
                 "source": "source_component"}
        filters = Filters(**{names.get(k, k): (v.rstrip("*") if k == "action" else v) for k, v in params.items()})
        if filters.actor_id and trail.protection.enabled:
            logs = [log] if log else [info.name for info in trail.logs()]
            found = trail.protection.sealed_forms(trail.store, filters.actor_id, logs)
            filters = msgspec.structs.replace(filters, actor_id=None, actor_in=found)
        if filters.actor_id or filters.actor_in is not None:
            from trailseal.cli_index import catch_up_index

            catch_up_index(trail)  # the actor lookup reads the search index
        rows = trail.store.select([log] if log else None, filters, None, limit)
        return trail.read_events([(lg, index, data) for lg, index, _, data in rows])
    except EventError as exc:
        fail(str(exc))
    finally:
        trail.close()


@app.command()
def erase(subject: Annotated[str, typer.Option(help="The data subject: the actor id whose personal data goes.")],
          data: DataOpt = None,
          log: Annotated[str | None, typer.Option("--log", "-l", help="Only in this log.")] = None) -> None:
    """GDPR Art. 17: delete a subject's personal values from the vault. Every proof and checkpoint
    stays valid; the erasure itself is sealed in the `trailseal` log (naming only a keyed hash)."""
    trail = open_trail(data)
    try:
        count = trail.erase(subject, log, by=f"cli:{os.environ.get('USER', 'unknown')}")
    except (DataDirError, StoreError) as exc:
        fail(str(exc))
    finally:
        trail.close()
    out.print(f"erased {count} vault values of the subject{' in log ' + log if log else ''}")


privacy_app = typer.Typer(help="The privacy policy in force.", no_args_is_help=True)
app.add_typer(privacy_app, name="privacy")


@privacy_app.command("show")
def privacy_show(data: DataOpt = None) -> None:
    """Print the privacy policy in force (its fingerprint, defaults, and per-log/source rules)."""
    trail = open_trail(data)
    print(trail.protection.describe())
    trail.close()


rules_app = typer.Typer(help="Detection rules (Sigma).", no_args_is_help=True)
app.add_typer(rules_app, name="rules")


@rules_app.command("test")
def rules_test_cmd(rule: Annotated[Path, typer.Argument(help="A Sigma rule file or a directory of them.")],
                   events: Annotated[Path, typer.Argument(help="NDJSON events (trailseal schema).")],
                   placeholders: Annotated[Path | None, typer.Option(help="YAML of %placeholder% values.")] = None,
                   ) -> None:
    """Run rules over events and print every alert (for rule authors). Exit 1 if nothing fired."""
    from trailseal.detect.testing import rules_test

    try:
        report = rules_test(rule, events, placeholders)
    except Exception as exc:  # noqa: BLE001 - pySigma raises many kinds; the message is what matters
        fail(f"cannot run {rule} over {events}: {exc}")
    for alert in report.alerts:
        where = ", ".join(f"{lg}:{idx}" for lg, idx in alert.events[:10])
        print(f"{alert.level:<8} {alert.title}  [{alert.rule_id}]  events {where}")
    err.print(f"{len(report.alerts)} alerts from {len(report.rules)} rules over {report.events} events")
    raise typer.Exit(0 if report.alerts else 1)


@app.command("alerts")
def alerts_cmd(data: DataOpt = None, limit: Annotated[int, typer.Option(help="Most alerts to print.")] = 50) -> None:
    """Print the newest alerts (sealed finding events in the `trailseal` log) as NDJSON."""
    from trailseal.alerts.service import ALERT_ACTION
    from trailseal.store.base import Filters

    trail = open_trail(data)
    try:
        rows = trail.store.select(["trailseal"], Filters(action_prefix=ALERT_ACTION), None, limit)
        for row in trail.read_events([(lg, index, blob) for lg, index, _, blob in rows]):
            print(json.dumps(row, ensure_ascii=False))
    finally:
        trail.close()


retention_app = typer.Typer(help="Retention: what expires when, and applying it.", no_args_is_help=True)
hold_app = typer.Typer(help="Legal holds: held events are never pruned.", no_args_is_help=True)
app.add_typer(retention_app, name="retention")
app.add_typer(hold_app, name="hold")
AtOpt = Annotated[str | None, typer.Option("--at", help="Pretend it is this RFC 3339 time (plans ahead).")]


def _retention(trail: Trail, writes: bool = False):
    """Retention of the data dir; ``writes``: the command changes the store and seals records of it, so it
    takes the writer lock first (and stops, before changing anything, while `serve` holds it)."""
    from trailseal.retention import RetentionConfigError, configured_retention

    try:
        if writes:
            trail.sealer  # noqa: B018 - the writer lock, taken now
        return configured_retention(trail)
    except DataDirError as exc:
        fail(f"{exc} (retention changes the store and seals a record of each change: run it where no other "
             "trailseal process writes to the data dir; `serve` applies retention itself every "
             "[retention] apply_interval_seconds)")
        raise
    except RetentionConfigError as exc:
        fail(str(exc))  # fail() escapes the markup
        raise


def _at(at: str | None):
    from datetime import datetime

    from trailseal.event import EventError, normalize_time

    if at is None:
        return None
    try:
        return datetime.fromisoformat(normalize_time(at, "--at").replace("Z", "+00:00"))
    except EventError as exc:
        fail(str(exc))
        raise


@retention_app.command("plan")
def retention_plan(data: DataOpt = None, at: AtOpt = None) -> None:
    """Show what `retention apply` would archive, expire or delete now, and what falls due later."""
    trail = open_trail(data)
    try:
        print("\n".join(_retention(trail).plan(_at(at)).lines()))
    finally:
        trail.close()


@retention_app.command("apply")
def retention_apply(data: DataOpt = None, at: AtOpt = None) -> None:
    """Archive payloads past their hot period, prune those past their keep period (leaf hashes and
    tiles stay, so every proof still verifies), delete archive segments whose retention ended."""
    from trailseal.retention import RetentionError

    trail = open_trail(data)
    counts = {"archive": 0, "expire": 0}

    def advance(action: str, count: int) -> None:
        counts[action] += count
        progress.update(task, description=f"archived {counts['archive']:,}, expired {counts['expire']:,}")

    try:
        with _progress(1) as progress:
            task = progress.add_task("applying retention", total=None)
            applied = _retention(trail, writes=True).apply(_at(at), progress=advance)
    except (RetentionError, DataDirError, StoreError) as exc:
        fail(str(exc))
    finally:
        trail.close()
    for step in applied.steps:
        print(step.line())
    for log, (subjects, rows) in applied.vault.items():
        print(f"{log}: vault values of {subjects} subjects expired with their last entries ({rows} rows)")
    if applied.scrubbed:
        print(f"{applied.scrubbed} free database pages overwritten with zeros")
    out.print(f"archived {applied.count('archive')}, expired {applied.count('expire')}, "
              f"deleted {len(applied.deleted)} segments, vault values of "
              f"{sum(subjects for subjects, _ in applied.vault.values())} subjects expired")


ServerOpt = Annotated[str | None, typer.Option("--url", envvar="TRAILSEAL_URL",
                                               help="Ask a running server ($TRAILSEAL_URL) instead of the data dir.")]


def _operator() -> str:
    """Who a command acts for, in its sealed records: the login running it."""
    return f"cli:{os.environ.get('USER', 'unknown')}"


def _ask_server(url: str, token: str | None, method: str, path: str, body: dict | None = None) -> dict:
    """One request to a running server's API; exits with its reason if it fails."""
    from trailseal.sdk.transport import SendError, Transport

    if not token:
        fail("no token: pass --token or set TRAILSEAL_TOKEN")
    transport = Transport(url, token)
    try:
        return transport.get(path) if method == "GET" else transport.post_json(path, body or {})
    except SendError as exc:
        fail(str(exc))
        raise
    finally:
        transport.close()


@hold_app.command("add")
def hold_add(reason: Annotated[str, typer.Option(help="Why (case number, request).")],
             data: DataOpt = None,
             ids: Annotated[str | None, typer.Option(help="Comma-separated event ids.")] = None,
             query: Annotated[str | None, typer.Option(help="e.g. 'actor:alice category:admin'.")] = None,
             log: LogOpt = "default", url: ServerOpt = None, token: TokenOpt = None) -> None:
    """Place a legal hold (sealed in the `trailseal` log with who placed it). Beside a running `serve`,
    use --url and an admin --token."""
    from trailseal.retention import RetentionError

    chosen = [i for i in (ids or "").split(",") if i]
    if url:
        held = _ask_server(url, token, "POST", "/v1/admin/holds",
                           {"reason": reason, "ids": chosen, "log": log, **({"query": query} if query else {})})
        out.print(f"hold {held['id']} placed")
        return
    trail = open_trail(data)
    try:
        placed = _retention(trail, writes=True).hold(reason=reason, ids=chosen, query=query, log=log, by=_operator())
    except RetentionError as exc:
        fail(str(exc))
    finally:
        trail.close()
    out.print(f"hold {placed.id} placed")


@hold_app.command("release")
def hold_release(hold_id: Annotated[int, typer.Argument(help="The hold id from `hold list`.")],
                 data: DataOpt = None, url: ServerOpt = None, token: TokenOpt = None) -> None:
    """Release a legal hold; its events follow their policies again (sealed with who released it)."""
    from trailseal.retention import RetentionError

    if url:
        _ask_server(url, token, "POST", f"/v1/admin/holds/{hold_id}/release")
        out.print(f"hold {hold_id} released")
        return
    trail = open_trail(data)
    try:
        _retention(trail, writes=True).release(hold_id, by=_operator())
    except RetentionError as exc:
        fail(str(exc))
    finally:
        trail.close()
    out.print(f"hold {hold_id} released")


@hold_app.command("list")
def hold_list(data: DataOpt = None, url: ServerOpt = None, token: TokenOpt = None) -> None:
    """Active legal holds, one JSON object per line (id, reason, query, created, ids held)."""
    import dataclasses

    if url:
        for held in _ask_server(url, token, "GET", "/v1/admin/holds")["holds"]:
            print(json.dumps(held, ensure_ascii=False))
        return
    trail = open_trail(data)
    try:
        for found in _retention(trail).holds():
            print(json.dumps(dataclasses.asdict(found), ensure_ascii=False))  # one JSON object per hold
    finally:
        trail.close()


# -- receivers (syslog listeners, file tail) --------------------------------------------------------


@app.command("syslog")
def syslog_(data: DataOpt = None, log: LogOpt = "default",
            udp: Annotated[str | None, typer.Option(help="Listen for UDP syslog on host:port.")] = None,
            tcp: Annotated[str | None, typer.Option(help="Listen for TCP syslog (octet counting or LF) on host:port.")] = None,
            tls: Annotated[str | None, typer.Option(help="Listen for syslog over TLS (RFC 5425) on host:port.")] = None,
            tls_cert: Annotated[Path | None, typer.Option(help="TLS certificate (PEM).")] = None,
            tls_key: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
            tls_client_ca: Annotated[Path | None, typer.Option(help="Require client certificates from this CA.")] = None,
            ) -> None:
    """Receive syslog (RFC 5424/3164) and seal it; Ctrl-C seals what was received, then stops."""
    from trailseal.receivers.syslog import run_syslog

    if not (udp or tcp or tls):
        fail("give at least one of --udp, --tcp, --tls (host:port)")
    if tls and not (tls_cert and tls_key):
        fail("--tls needs --tls-cert and --tls-key")
    trail = open_trail(data)
    try:
        run_syslog(trail, udp, tcp, tls, tls_cert=str(tls_cert) if tls_cert else None,
                   tls_key=str(tls_key) if tls_key else None,
                   tls_client_ca=str(tls_client_ca) if tls_client_ca else None, log_name=log)
    except (OSError, ValueError, DataDirError) as exc:
        fail(str(exc))
    finally:
        trail.close()


@app.command("tail")
def tail_(paths: Annotated[list[Path], typer.Argument(help="Files to follow.")],
          fmt: Annotated[str, typer.Option("--format", "-f", help="A trailseal format: access_log, auth_log, "
                                                                  "syslog, pgaudit, cloudtrail, ndjson, ...")],
          data: DataOpt = None, log: LogOpt = "default",
          state: Annotated[Path | None, typer.Option(help="Offsets file (default <data>/tail.state).")] = None,
          component: Annotated[str | None, typer.Option(help="source.component of the events.")] = None,
          once: Annotated[bool, typer.Option(help="Seal what the files hold now, then exit.")] = False,
          ) -> None:
    """Follow log files into the sealed log, across restarts and rotation (offsets saved after sealing)."""
    import signal
    import threading

    from trailseal import formats
    from trailseal.receivers.tail import tail

    if fmt not in formats.NAMES:
        fail(f"unknown format {fmt!r}; known: {', '.join(formats.NAMES)}")
    trail = open_trail(data)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stats = tail(trail, paths, fmt, state or trail.directory / "tail.state", stop=stop, once=once,
                     ctx={"component": component} if component else None, log_name=log)
    except (OSError, ValueError, DataDirError) as exc:
        fail(str(exc))
    finally:
        trail.close()
    err.print(f"sealed {stats.sealed} events from {stats.records} records; rejected {stats.rejected}")


@app.command("query")
def query_cmd(text: Annotated[str, typer.Argument(help="e.g. 'actor:alice outcome:failure action:user.* since:24h'")],
              data: DataOpt = None,
              url: Annotated[str | None, typer.Option(envvar="TRAILSEAL_URL", help="Ask a server instead.")] = None,
              token: TokenOpt = None,
              log: Annotated[str | None, typer.Option("--log", "-l", help="Only this log.")] = None,
              limit: Annotated[int, typer.Option(help="Most events to print.")] = 100) -> None:
    """Search with the query language; prints NDJSON, newest first. A bad query points at its column."""
    from trailseal.cli_index import catch_up_index
    from trailseal.query import QueryError
    from trailseal.query.sealed import search_trail

    if url:
        rows = _search_remote(url, token, {"q": text, **({"log": log} if log else {})}, limit)
    else:
        trail = open_trail(data)
        try:
            catch_up_index(trail)
            page = search_trail(trail, text, log, min(limit, 1000))
            rows = [{"log": e.pop("log"), "index": e.pop("index"), "event": e} for e in page.events]
        except QueryError as exc:
            fail(f"query: {exc}")
        finally:
            trail.close()
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))


@app.command("timeline")
def timeline_cmd(what: Annotated[str, typer.Argument(help="actor:ID, session:ID or trace:ID")],
                 data: DataOpt = None,
                 since: Annotated[str | None, typer.Option(help="15m, 24h, 7d, a date or RFC 3339.")] = None,
                 log: Annotated[str | None, typer.Option("--log", "-l", help="Only this log.")] = None,
                 limit: Annotated[int, typer.Option(help="Most events.")] = 1000) -> None:
    """Events of one actor, session or trace in time order (a finding and the requests behind it)."""
    from trailseal.cli_index import catch_up_index
    from trailseal.query import QueryError
    from trailseal.query.sealed import timeline_trail

    key, _, value = what.partition(":")
    if not value:
        fail("give actor:ID, session:ID or trace:ID")
    trail = open_trail(data)
    try:
        catch_up_index(trail)
        events = timeline_trail(trail, key, value, since, log, limit)
    except QueryError as exc:
        fail(f"timeline: {exc}")
    finally:
        trail.close()
    for event in events:
        print(f"{event.get('time')}  {event.get('log')}:{event.get('index')}  {event.get('action')} "
              f"{event.get('outcome')}  {(event.get('actor') or {}).get('id')}  "
              f"{(event.get('request') or {}).get('path') or (event.get('target') or {}).get('id') or ''}")


# -- commands kept in their own modules (each module's register(app) adds its commands) ------------
def _register_commands() -> None:
    from trailseal.cli_archive import register as register_archive
    from trailseal.cli_export import register as register_export
    from trailseal.cli_index import register as register_index
    from trailseal.cli_report import register as register_report

    for register in (register_archive, register_export, register_report, register_index):
        register(app)


_register_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
