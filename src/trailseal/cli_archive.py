"""`trailseal archive ...` (list, verify, restore, rotate-key) and `trailseal keys ...` (rotate, list)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

archive_app = typer.Typer(help="The WORM archive: encrypted, self-verifying segments of payloads past "
                               "their hot period.", no_args_is_help=True)
keys_app = typer.Typer(help="The checkpoint signing key: rotate it, list every key that ever signed.",
                       no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the `archive` and `keys` command groups."""
    app.add_typer(archive_app, name="archive")
    app.add_typer(keys_app, name="keys")


def _cli():
    """cli.py's helpers (imported late: cli.py imports this module while it is being built)."""
    from trailseal import cli

    return cli


def _retention(trail, writes: bool = False):
    """Retention for the trail, failing with a hint when no archive is configured (``writes``: see
    cli._retention)."""
    cli = _cli()
    retention = cli._retention(trail, writes)  # noqa: SLF001 - the shared config-checking constructor
    if retention.archive is None:
        cli.fail("no archive configured: add a \\[retention.archive] table to trailseal.toml "
                 "(type = \"dir\" or \"s3\", see docs/retention.md)")
    return retention


@archive_app.command("list")
def archive_list(data: Annotated[Path | None, typer.Option("--data", "-d", help="Data dir.")] = None,
                 log: Annotated[str | None, typer.Option("--log", "-l", help="Only this log.")] = None,
                 deleted: Annotated[bool, typer.Option(help="Also segments deleted after their retention.")] = False,
                 ) -> None:
    """List archive segments: log, policy, index range, entries, bytes, locked until, hold, state."""
    cli = _cli()
    trail = cli.open_trail(data)
    try:
        retention = _retention(trail)
        rows = retention.segments(log, deleted=deleted)
        orphans = sorted(set(retention.archive.target.keys()) - {row.key for row in retention.segments(deleted=True)})
    finally:
        trail.close()
    for row in rows:
        state = f"deleted {row.deleted}" if row.deleted else f"{row.archived} archived"
        print(f"{row.key}  {row.policy}  [{row.start}..{row.end - 1}]  {row.count} entries  {row.size} bytes  "
              f"locked until {row.retain_until}{'  HELD' if row.held else ''}  {state}")
    for key in orphans:
        print(f"{key}  orphan: written, but the store never dropped its payloads (expires with its lock)")
    cli.out.print(f"{len(rows)} segments" + (f", {len(orphans)} orphans" if orphans else ""))


@archive_app.command("verify")
def archive_verify(keys: Annotated[list[str] | None, typer.Argument(help="Segment keys (default: every "
                                                                             "segment in the archive).")] = None,
                   data: Annotated[Path | None, typer.Option("--data", "-d", help="Data dir.")] = None) -> None:
    """Verify archive segments on their own; exit 1 names any that fails.

    Each segment is decrypted (manifest authenticated), every entry re-hashed, the batch proof folded
    into the checkpoint's root, and its signature checked by any key the log ever had."""
    cli = _cli()
    trail = cli.open_trail(data)
    failed = 0
    try:
        archive = _retention(trail).archive
        keys = keys or archive.target.keys()
        if not keys:
            cli.fail("the archive holds no segments yet (`trailseal retention apply` writes them)")
        with cli._progress(len(keys)) as progress:  # noqa: SLF001
            task = progress.add_task("verifying segments", total=len(keys))
            for key in keys:
                failed += not _verify_one(trail, archive, key)
                progress.advance(task)
    finally:
        trail.close()
    (cli.err if failed else cli.out).print(f"{len(keys) - failed} of {len(keys)} segments verified", markup=False)
    raise typer.Exit(1 if failed else 0)


def _verify_one(trail, archive, key: str) -> bool:
    """Verify one segment and print its line; whether it verified."""
    from trailseal.archive import ArchiveError
    from trailseal.archive.segment import SegmentError

    cli = _cli()
    try:
        log = archive.manifest(key).log
        report = archive.verify(key, trail.verifiers(log))
    except (ArchiveError, SegmentError) as exc:
        cli.err.print(f"{key}: FAILED: {exc}", markup=False)
        return False
    if not report.ok:
        cli.err.print(f"{key}: FAILED: {report.problem}", markup=False)
        return False
    m = report.manifest
    cli.out.print(f"{key}: OK: {m.count} entries of {m.log} [{m.start}..{m.end - 1}] in the checkpoint at size "
                  f"{m.size}", markup=False)
    return True


@archive_app.command("verify-file")
def archive_verify_file(path: Annotated[Path, typer.Argument(help="A segment file (.tseg), e.g. fetched from S3.")],
                        vkey: Annotated[list[str], typer.Option(help="The log's verifier key (text or file; "
                                                                     "repeat for each from `vkey --all`).")],
                        key_file: Annotated[Path | None, typer.Option(help="Master keys: '<id> <base64>' lines "
                                                                           "(mode 0600).")] = None,
                        key_env: Annotated[str, typer.Option(help="Else: the variable holding "
                                                                  "'<id>:<base64>' keys.")] = "TRAILSEAL_ARCHIVE_KEYS",
                        ) -> None:
    """Verify one segment offline, with no data dir: only the log's vkey and the master key (also
    `trailseal verify segment FILE`).

    Prints what the segment holds and the checkpoint it proves against; exit 1 if it does not verify."""
    verify_segment_file(path, vkey, key_file, key_env)


def verify_segment_file(path: Path, vkeys: list[str], key_file: Path | None, key_env: str) -> None:
    """Check a segment file offline and exit: 0 if it verifies, 1 if not, 2 if it cannot be checked."""
    from trailseal.archive.crypto import CryptoError, EnvKeys, FileKeys
    from trailseal.archive.segment import verify_segment
    from trailseal.ledger import LedgerError, Verifier

    cli = _cli()
    if not vkeys:
        cli.fail("a segment is checked against the log's verifier key: pass --vkey (from `trailseal vkey --all`)")
    try:
        verifiers = [Verifier.from_vkey(_text_or_file(v)) for v in vkeys]
        keys = FileKeys(key_file) if key_file else EnvKeys(key_env)
        blob = path.read_bytes()
    except (LedgerError, CryptoError, OSError) as exc:
        cli.fail(str(exc))
    report = verify_segment(blob, verifiers, keys)
    (cli.out if report.ok else cli.err).print(f"{path}: {report.summary()}", markup=False)
    raise typer.Exit(0 if report.ok else 1)


def _text_or_file(value: str) -> str:
    """A vkey given as text, or the path of a file holding it."""
    candidate = Path(value)
    return candidate.read_text("utf-8").strip() if "+" not in value and candidate.is_file() else value.strip()


@archive_app.command("restore")
def archive_restore(data: Annotated[Path | None, typer.Option("--data", "-d", help="Data dir.")] = None,
                    log: Annotated[str, typer.Option("--log", "-l", help="Which log.")] = "default",
                    start: Annotated[int, typer.Option("--from", help="First index to restore.", min=0)] = 0,
                    end: Annotated[int | None, typer.Option("--to", help="One past the last index (default: all).",
                                                            min=0)] = None,
                    query: Annotated[str | None, typer.Option(help="Only entries this matches, e.g. 'actor:alice "
                                                                   "category:admin since:2026-01-01' (any log).")] = None,
                    ) -> None:
    """Bring archived payloads back into the store, for queries; each segment is verified first.

    The next `retention apply` drops them again while their policy says they are past hot."""
    from trailseal.retention import RetentionError

    cli = _cli()
    if end is not None and end <= start:
        cli.fail(f"--to {end} must be greater than --from {start}")
    trail = cli.open_trail(data)
    try:
        retention = _retention(trail, writes=True)
        segments = [] if query else retention.restorable(log, start, 2**62 if end is None else end)
        with cli._progress(len(segments) or None) as progress:  # noqa: SLF001
            task = progress.add_task("restoring segments", total=len(segments) or None)

            def step(key: str, count: int) -> None:
                progress.advance(task)

            restored = (retention.restore_matching(query, on_segment=step) if query
                        else retention.restore(log, start, end, on_segment=step))
    except RetentionError as exc:
        cli.fail(str(exc))
    finally:
        trail.close()
    where = f"matching {query!r}" if query else f"of log {log} from {len(segments)} segments"
    cli.out.print(f"restored {restored} entries {where}", markup=False)


@archive_app.command("rotate-key")
def archive_rotate_key(data: Annotated[Path | None, typer.Option("--data", "-d", help="Data dir.")] = None,
                       new_id: Annotated[str | None, typer.Option(help="With a key_file: add a fresh master key "
                                                                       "with this id and make it current.")] = None,
                       ) -> None:
    """Rewrap every segment's data key under the current master key; the data is never re-encrypted.

    With --new-id (key_file archives) a new master key is generated first. Keep the old master key
    until the last segment it wrapped is deleted (S3 keeps the old locked versions)."""
    from trailseal.archive import ArchiveError, open_keys
    from trailseal.archive.crypto import CryptoError, add_key_file

    cli = _cli()
    trail = cli.open_trail(data)
    try:
        retention = _retention(trail, writes=True)
        conf = trail.config.retention["archive"]
        if new_id:
            if not conf.get("key_file"):
                cli.fail("--new-id needs key_file in \\[retention.archive]; with key_env, put the new "
                         "'<id>:<base64 key>' first in the variable and run rotate-key without --new-id")
            add_key_file(trail.directory / conf["key_file"], new_id)
            retention.archive.keys = open_keys(conf, trail.directory)
        keys = retention.archive.target.keys()
        with cli._progress(len(keys)) as progress:  # noqa: SLF001
            task = progress.add_task("rewrapping data keys", total=len(keys))
            report = retention.rotate_master_key(on_rewrap=lambda key: progress.advance(task))
    except (ArchiveError, CryptoError) as exc:
        cli.fail(str(exc))
    finally:
        trail.close()
    cli.out.print(f"rewrapped {len(report.rewrapped)} segments under master key "
                  f"{retention.archive.keys.current()}; {len(report.current)} already were")


@keys_app.command("rotate")
def keys_rotate(data: Annotated[Path | None, typer.Option("--data", "-d", help="Data dir.")] = None) -> None:
    """Replace the checkpoint signing key; old checkpoints keep verifying under the old one.

    The old vkey is kept in signing.history (`trailseal vkey --all`); the rotation is sealed in the
    `trailseal` log with a statement signed by both keys. Stop `trailseal serve` first (it holds the
    writer lock)."""
    from trailseal.datadir import DataDirError
    from trailseal.keys import KeyRotationError, rotate_signing_key
    from trailseal.store.base import StoreError

    cli = _cli()
    trail = cli.open_trail(data)
    try:
        rotation = rotate_signing_key(trail)
    except (DataDirError, KeyRotationError, StoreError) as exc:
        cli.fail(str(exc))
    finally:
        trail.close()
    cli.out.print(f"signing key rotated (sealed as trailseal entry {rotation.index})\n"
                  f"old: {rotation.old_vkey}\nnew: {rotation.new_vkey}", markup=False)


@keys_app.command("list")
def keys_list(data: Annotated[Path | None, typer.Option("--data", "-d", help="Data dir.")] = None) -> None:
    """The current signing key and every retired one, with the log sizes at which each retired."""
    from trailseal.keys import KeyHistory, KeyRotationError

    cli = _cli()
    trail = cli.open_trail(data)
    try:
        history = KeyHistory.load(trail.directory, trail.base_vkey)
    except KeyRotationError as exc:
        cli.fail(str(exc))
    finally:
        trail.close()
    print(f"current  {trail.base_vkey}")
    for key in reversed(history.retired):
        sizes = ", ".join(f"{log} <= {size}" for log, size in sorted(key.sizes.items()))
        print(f"retired {key.retired}  {key.vkey}  (signed {sizes or 'nothing'})")
