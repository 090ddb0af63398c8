"""`trailseal index`: bring the search indexes (full text, IPs, actors) up to date, with a progress bar,
and settle the keys of the vault rows the sealer appended (store/sqlite_vault.py).

`serve` keeps them current in the background; without a server, `query`, `timeline` and `search --actor`
catch up on demand through ``catch_up_index`` before they run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trailseal.store.base import on_postgres

PROGRESS_FROM = 20_000  # entries behind before a catch-up shows a bar


def catch_up_index(trail) -> int:
    """Index what the search indexes miss of a SQLite data dir (and settle the vault keys waiting); a
    progress bar on stderr if it is long."""
    from trailseal.cli import _progress
    from trailseal.query import index

    if on_postgres(trail.store):
        from trailseal.query import index_pg

        return index_pg.refresh(trail.store)
    if type(trail.store).__name__ != "SQLiteStore":
        return 0
    conn = index.connection(trail.store)
    behind = index.pending(conn)
    if behind < PROGRESS_FROM:
        return index.refresh(conn)
    with _progress(behind) as progress:
        task = progress.add_task("indexing for search", total=behind)
        return index.refresh(conn, progress=lambda count: progress.advance(task, count))


def reset_index(trail) -> None:
    """Empty a data dir's search indexes (the next catch-up rebuilds them from the sealed entries)."""
    from trailseal.query import index

    if on_postgres(trail.store):
        from trailseal.query import index_pg

        index_pg.reset(trail.store)
    elif type(trail.store).__name__ == "SQLiteStore":
        index.reset(index.connection(trail.store))


def register(app: typer.Typer) -> None:
    """Add the `index` command."""
    app.command("index")(index_cmd)


def index_cmd(data: Annotated[Path | None, typer.Option("--data", "-d", help="Data dir (default $TRAILSEAL_DATA"
                                                         " or ./trailseal-data).")] = None,
              rebuild: Annotated[bool, typer.Option(
                  help="Empty the search indexes and index every entry again (e.g. entries indexed by a build "
                       "that did not key sealed addresses). Searches find less until it is done.")] = False,
              ) -> None:
    """Bring the search indexes up to date (full text, IP ranges, actors) and say how far they reach.

    `serve` does this in the background every second; run it after a bulk `ingest` on a data dir no
    server has open, so the first `query` is fast."""
    from trailseal import cli
    from trailseal.query import index

    trail = cli.open_trail(data)
    try:
        if rebuild:
            reset_index(trail)
        added = catch_up_index(trail)
        if on_postgres(trail.store):
            cli.err.print(f"indexed {added:,} new entries; the search tables hold every committed entry")
            return
        upto = index.indexed_up_to(index.connection(trail.store))
    finally:
        trail.close()
    cli.err.print(f"indexed {added:,} new entries; the search indexes hold every entry up to seq {upto:,}")
