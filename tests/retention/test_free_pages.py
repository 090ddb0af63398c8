"""Free pages: archive moves leave their bytes in free pages (the archive keeps those very bytes), and apply
zeroes every free page once a payload's keep ended, so nothing of it outlives its retention on disk."""

from __future__ import annotations

import gc
import sqlite3
from datetime import timedelta

from tests.conftest import make_event
from trailseal.store.sqlite import scrub_free_pages

MARKER = b"payload-marker-7f3a9c"
DAY = timedelta(days=1)


def database_files(directory) -> bytes:
    return b"".join(path.read_bytes() for path in directory.glob("trailseal.db*"))


def test_scrub_zeroes_every_free_page_and_keeps_the_live_rows(tmp_path):
    path = tmp_path / "scratch.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA secure_delete=FAST")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, MARKER + b"x" * 3000) for i in range(400)])
    conn.execute("DELETE FROM t WHERE id >= 100")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    assert free > 250
    assert path.read_bytes().count(MARKER) > 250  # FAST left the deleted rows' bytes in free pages

    scrubbed = scrub_free_pages(conn)

    assert scrubbed == free  # every free page (free again afterwards, holding zeros)
    assert path.read_bytes().count(MARKER) == 100  # only the live rows' copies
    assert conn.execute("SELECT count(*), sum(length(body)) FROM t").fetchone() == (100, 100 * (len(MARKER) + 3000))
    assert conn.execute("PRAGMA secure_delete").fetchone()[0] == 2  # as it was
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'trailseal_scrub'").fetchone() is None
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_archived_payloads_leave_the_free_pages_when_their_keep_ends(data_dir, trail, retention, clock):
    events = [make_event(i, category="data_access", action="record.read",
                         attributes={"note": (MARKER + b"-%05d " % i).decode() * 8}) for i in range(3000)]
    trail.append(events)
    start = clock.now

    clock.now = start + 31 * DAY  # data_access: hot 30 days, kept 180
    moved = retention.apply(clock.now)
    assert moved.count("archive") == 3000 and moved.scrubbed == 0
    assert MARKER in database_files(data_dir)  # the archive holds them until day 180, and so may free pages

    clock.now = start + 181 * DAY
    expired = retention.apply(clock.now)
    assert expired.count("expire") == 3000 and expired.scrubbed > 0
    assert MARKER not in database_files(data_dir)


def test_an_apply_that_expires_nothing_scrubs_nothing(trail, retention, clock):
    trail.append([make_event(i, category="data_access", action="record.read") for i in range(50)])
    applied = retention.apply(clock.now + 31 * DAY)
    assert applied.count("archive") == 50 and applied.count("expire") == 0 and applied.scrubbed == 0
    conn = trail.store._conn()  # the archive's bulk settings are this connection's again, and the collector runs
    assert [conn.execute(f"PRAGMA {name}").fetchone()[0] for name in ("secure_delete", "mmap_size")] == [1, 0]
    assert gc.isenabled()


def test_the_command_says_how_many_free_pages_it_zeroed(tmp_path):
    from typer.testing import CliRunner

    import trailseal
    from tests.archive.helpers import T0, FakeClock
    from tests.retention.conftest import configured
    from trailseal.cli import app

    directory = configured(trailseal.init(tmp_path / "data", origin="test.trailseal"))
    with trailseal.open(directory, clock=FakeClock(T0)) as trail:
        trail.append([make_event(i, category="data_access", action="record.read") for i in range(500)])

    def apply(days: int) -> str:
        at = (T0 + days * DAY).isoformat().replace("+00:00", "Z")
        done = CliRunner().invoke(app, ["retention", "apply", "--data", str(directory), "--at", at])
        assert done.exit_code == 0, done.output
        return done.output

    assert "free database pages" not in apply(31)  # archived: nothing's keep ended
    zeroed = [line for line in apply(181).splitlines() if line.endswith("free database pages overwritten with zeros")]
    assert len(zeroed) == 1 and int(zeroed[0].split()[0]) > 0
