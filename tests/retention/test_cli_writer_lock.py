"""Retention commands that change the store take the writer lock before anything else: while another
process writes (`serve`), they stop with a reason and change nothing, since each change must be sealed."""

from __future__ import annotations

import subprocess
import sys

import pytest

import trailseal
from tests.archive.helpers import T0, FakeClock, entries
from tests.conftest import make_event
from tests.retention.conftest import configured

LATER = "2027-06-01T00:00:00Z"


@pytest.fixture
def busy(tmp_path):
    """A data dir with 20 events and another process holding its writer lock (as `serve` does)."""
    directory = configured(trailseal.init(tmp_path / "data", origin="test.trailseal"))
    with trailseal.open(directory, clock=FakeClock(T0)) as trail:
        trail.append([make_event(i) for i in range(20)])
    holder = subprocess.Popen([sys.executable, "-c", "import sys, trailseal; t = trailseal.open(sys.argv[1]); t.sealer;"
                               " print('locked', flush=True); sys.stdin.read()", str(directory)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    yield directory
    holder.communicate("", timeout=30)


@pytest.mark.parametrize("command", [["retention", "apply", "--at", LATER],
                                     ["hold", "add", "--reason", "case 1", "--ids", "evt-00000001"],
                                     ["archive", "restore"]])
def test_a_changing_command_stops_before_changing_anything(busy, command):
    with trailseal.open(busy) as trail:
        before = (entries(trail.store), trail.store.tree_size("trailseal"))
    done = subprocess.run([sys.executable, "-m", "trailseal", *command, "--data", str(busy)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is writing to" in done.stderr and "seals a record of each change" in done.stderr
    assert "Traceback" not in done.stderr
    with trailseal.open(busy) as trail:
        assert (entries(trail.store), trail.store.tree_size("trailseal")) == before
        conn = trail.store._conn()  # noqa: SLF001
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "legal_holds" not in tables or conn.execute("SELECT count(*) FROM legal_holds").fetchone()[0] == 0


def test_reading_commands_still_run_beside_the_writer(busy):
    done = subprocess.run([sys.executable, "-m", "trailseal", "retention", "plan", "--data", str(busy)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "upcoming:" in done.stdout
