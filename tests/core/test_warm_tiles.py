"""Trail.warm_tiles reads every stored tile of every log once (serve calls it at start so proofs on a
large log come from the page cache)."""

from __future__ import annotations

import sqlite3

import trailseal
from tests.conftest import make_event


def test_warm_tiles_reads_every_tile_of_every_log(data_dir):
    with trailseal.open(data_dir) as trail:
        trail.append([make_event(i) for i in range(700)])
        trail.append([make_event(i, log="other") for i in range(1000, 1300)])
        read = trail.warm_tiles()
    with sqlite3.connect(data_dir / "trailseal.db") as conn:
        stored = conn.execute("SELECT sum(length(data)), count(DISTINCT log), max(level) FROM tiles").fetchone()
    assert read == stored[0] and stored[1] >= 2 and stored[2] >= 1
