"""`verify` with worker processes re-hashing full tiles must say exactly what the sequential walk says:
the same root on an untouched log, and the same first bad index and problem after each kind of edit."""

from __future__ import annotations

import sqlite3

import pytest

import trailseal
from tests.conftest import make_event
from trailseal.ledger import verify as ledger_verify
from trailseal.ledger.merkle import TreeState, root_from_leaf_hashes
from trailseal.store.tile_hashing import subtree_hash

COMMITS = [256, 256, 300, 212, 256, 100]  # checkpoints on tile edges, one inside tile 3, a partial tail
SIZE = sum(COMMITS)


@pytest.fixture
def sealed(data_dir, monkeypatch):
    """1,380 entries; the parallel path is taken from the first full tile on."""
    monkeypatch.setattr(ledger_verify, "PARALLEL_MIN_TILES", 1)
    with trailseal.open(data_dir) as log:
        start = 0
        for count in COMMITS:
            log.append([make_event(i) for i in range(start, start + count)])
            start += count
    return data_dir


def reports(data_dir):
    """(sequential report, report with two workers) of the default log."""
    with trailseal.open(data_dir) as log:
        (alone,) = log.verify("default", workers=1)
        (pooled,) = log.verify("default", workers=2)
    return alone, pooled


def edit(data_dir, *statements) -> None:
    with sqlite3.connect(data_dir / "trailseal.db", isolation_level=None) as conn:
        for sql, *params in statements:
            conn.execute(sql, params)


def test_untouched_log_gives_the_same_root(sealed):
    edit(sealed, ("UPDATE entries SET data=CAST(data AS TEXT) WHERE idx=1100",))  # same bytes as TEXT: still intact
    alone, pooled = reports(sealed)
    assert alone.ok and pooled.ok, (alone.summary(), pooled.summary())
    assert (pooled.entries, pooled.size, pooled.checkpoints, pooled.root) == \
           (alone.entries, alone.size, alone.checkpoints, alone.root) == (SIZE, SIZE, len(COMMITS), alone.root)


@pytest.mark.parametrize("name, statements, bad", [
    ("modified entry", [("UPDATE entries SET data=CAST(replace(CAST(data AS TEXT), 'user', 'usex') AS BLOB)"
                         " WHERE idx=600",)], 600),
    ("entry rewritten as text", [("UPDATE entries SET data=replace(data, 'orders', 'ordars') WHERE idx=1100",)], 1100),
    ("deleted entry", [("DELETE FROM entries WHERE idx=700",)], 700),
    ("swapped entries", [("UPDATE entries SET idx=-1 WHERE idx=300",), ("UPDATE entries SET idx=300 WHERE idx=900",),
                         ("UPDATE entries SET idx=900 WHERE idx=-1",)], 300),
    ("changed level-0 tile", [("UPDATE tiles SET data=zeroblob(8192) WHERE level=0 AND idx=4",)], 1024),
    ("changed level-1 tile", [("UPDATE tiles SET data=zeroblob(160) WHERE level=1 AND idx=0",)], 0),
    ("truncated tail", [("DELETE FROM entries WHERE idx>=1300",)], 1300),
    ("entry beyond the checkpoint", [("INSERT INTO entries (log, idx, id, time, received, category, action, outcome,"
                                      " actor_id, data) SELECT log, 1380, 'x', time, received, category, action,"
                                      " outcome, actor_id, data FROM entries WHERE idx=0",)], 1380),
])
def test_each_edit_is_reported_alike(sealed, name, statements, bad):
    edit(sealed, *statements)
    alone, pooled = reports(sealed)
    assert not alone.ok, name
    assert (pooled.problem, pooled.first_bad_index) == (alone.problem, alone.first_bad_index), name
    assert pooled.first_bad_index == bad, pooled.summary()


def test_append_full_tile_matches_append():
    leaves = [bytes([i % 251]) * 32 for i in range(256 * 3 + 17)]
    plain, tiled = TreeState.empty(), TreeState.empty()
    plain.append(leaves)
    for t in range(3):
        tile = leaves[t * 256:(t + 1) * 256]
        tiled.append_full_tile(b"".join(tile), subtree_hash(tile))
    tiled.append(leaves[768:])
    assert tiled.root() == plain.root() == root_from_leaf_hashes(leaves)
    assert tiled.edge_tiles() == plain.edge_tiles()
    with pytest.raises(ValueError):
        tiled.append_full_tile(b"".join(leaves[:256]), subtree_hash(leaves[:256]))  # not tile-aligned any more


def test_workers_rehash_every_full_tile(sealed):
    with trailseal.open(sealed) as log:
        tiles = list(log.store.hashed_tiles("default", 0, SIZE // 256, 2))
        stored = [log.store.read_tile("default", 0, t) for t in range(SIZE // 256)]
    assert [t for t, _, _ in tiles] == list(range(SIZE // 256))
    assert [data for _, data, _ in tiles] == stored
    assert all(root is not None and len(root) == 32 for _, _, root in tiles)


def test_a_worker_failure_falls_back_to_the_sequential_walk(sealed):
    from trailseal.store.base import StoreError

    with trailseal.open(sealed) as log:
        real = log.store.hashed_tiles

        def dies_after_two(name, start, end, workers):
            for n, result in enumerate(real(name, start, end, workers)):
                if n == 2:
                    raise StoreError("a verify worker failed: killed")
                yield result

        log.store.hashed_tiles = dies_after_two
        (report,) = log.verify("default", workers=2)
        log.store.hashed_tiles = real
        (alone,) = log.verify("default", workers=1)
    assert report.ok and (report.entries, report.root) == (alone.entries, alone.root)
