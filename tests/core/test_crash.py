"""SIGKILL a writer mid-ingest at random points; every receipted event must survive exactly once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap

import trailseal

DRIVER = textwrap.dedent("""
    import json, sys
    import trailseal
    from tests.conftest import make_event
    start, count = int(sys.argv[2]), int(sys.argv[3])
    with trailseal.open(sys.argv[1]) as log:
        for b in range(start, start + count, 50):
            receipts = log.append([make_event(i) for i in range(b, b + 50)])
            print(json.dumps([[r.id, r.index] for r in receipts]), flush=True)
""")


def run_until_killed(data_dir, start: int, kill_after: int) -> dict[str, int]:
    """Run the driver, SIGKILL it after ``kill_after`` receipt lines; return the receipts it printed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), *sys.path])}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(data_dir), str(start), "100000"],
                            stdout=subprocess.PIPE, env=env)
    receipts: dict[str, int] = {}
    for _ in range(kill_after):
        line = proc.stdout.readline()
        assert line, "driver ended early"
        receipts.update(json.loads(line))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return receipts


def test_receipted_events_survive_sigkill(data_dir):
    rng = random.Random(7)
    acknowledged: dict[str, int] = {}
    start = 0
    for _ in range(5):
        acknowledged.update(run_until_killed(data_dir, start, rng.randint(1, 40)))
        start += 100000
        with trailseal.open(data_dir) as log:
            (report,) = log.verify("default")
            assert report.ok, report.summary()
            stored = {}
            for index, data in log.store.read_entries("default", 0, report.entries):
                stored[json.loads(data)["id"]] = index
        assert len(stored) == report.entries, "an id was sealed twice"
        missing = {i for i in acknowledged if stored.get(i) != acknowledged[i]}
        assert not missing, f"{len(missing)} acknowledged events lost or moved"
    assert len(acknowledged) >= 5 * 50
