"""Edit the SQLite file behind trailseal's back; `verify` must catch each edit and name the first bad index."""

from __future__ import annotations

import sqlite3

import pytest
from typer.testing import CliRunner

import trailseal
from tests.conftest import make_event
from trailseal.cli import app
from trailseal.ledger import Signer, generate, open_note, sign

SIZE = 1000
BAD = 417


@pytest.fixture
def sealed(data_dir):
    """A data dir with 1000 entries sealed in 10 commits; returns (dir, checkpoint at 1000)."""
    with trailseal.open(data_dir) as log:
        for start in range(0, SIZE, 100):
            log.append([make_event(i) for i in range(start, start + 100)])
        saved = log.checkpoint()
    return data_dir, saved


def db(data_dir) -> sqlite3.Connection:
    return sqlite3.connect(data_dir / "trailseal.db", isolation_level=None)


def verify_cli(data_dir, *extra: str):
    return CliRunner().invoke(app, ["verify", "--data", str(data_dir), *extra])


def first_bad(data_dir, trusted: str | None = None):
    with trailseal.open(data_dir) as log:
        (report,) = log.verify("default", trusted=trusted)
    return report


def test_untouched_log_verifies(sealed):
    data_dir, saved = sealed
    result = verify_cli(data_dir)
    assert result.exit_code == 0, result.output
    assert "OK" in result.output and "1000 entries" in result.output
    assert first_bad(data_dir, trusted=saved).ok


def test_modified_entry(sealed):
    data_dir, _ = sealed
    with db(data_dir) as conn:
        data = conn.execute("SELECT data FROM entries WHERE idx=?", (BAD,)).fetchone()[0]
        conn.execute("UPDATE entries SET data=? WHERE idx=?", (data.replace(b"user", b"usex", 1), BAD))
    result = verify_cli(data_dir)
    assert result.exit_code == 1
    assert f"first bad index {BAD}" in result.output
    assert first_bad(data_dir).first_bad_index == BAD


def test_deleted_entry(sealed):
    data_dir, _ = sealed
    with db(data_dir) as conn:
        conn.execute("DELETE FROM entries WHERE idx=?", (BAD,))
    report = first_bad(data_dir)
    assert not report.ok and report.first_bad_index == BAD
    assert "missing" in report.problem


def test_inserted_entry(sealed):
    data_dir, _ = sealed
    forged = trailseal.event.from_dict(make_event(99999)).canonical
    with db(data_dir) as conn:
        conn.execute("UPDATE entries SET idx=-idx-1 WHERE idx>=?", (BAD,))
        conn.execute("UPDATE entries SET idx=-idx WHERE idx<0")
        conn.execute("INSERT INTO entries (log, idx, id, time, received, category, action, outcome, actor_id,"
                     " data) SELECT log, ?, 'forged', time, received, category, action, outcome,"
                     " actor_id, ? FROM entries WHERE idx=0", (BAD, forged))
    assert first_bad(data_dir).first_bad_index == BAD


def test_swapped_entries(sealed):
    data_dir, _ = sealed
    with db(data_dir) as conn:
        conn.execute("UPDATE entries SET idx=-1 WHERE idx=?", (BAD,))
        conn.execute("UPDATE entries SET idx=? WHERE idx=600", (BAD,))
        conn.execute("UPDATE entries SET idx=600 WHERE idx=-1")
    assert first_bad(data_dir).first_bad_index == BAD


def test_truncation_is_caught_against_a_saved_checkpoint(sealed, tmp_path):
    data_dir, saved = sealed
    keep = 800
    with db(data_dir) as conn:
        conn.execute("DELETE FROM entries WHERE idx>=?", (keep,))
        conn.execute("DELETE FROM checkpoints WHERE log='default' AND size>?", (keep,))
        note = conn.execute("SELECT note FROM checkpoints WHERE size=?", (keep,)).fetchone()[0]
        conn.execute("UPDATE logs SET size=?, checkpoint=? WHERE name='default'", (keep, note))
        tile = conn.execute("SELECT data FROM tiles WHERE level=0 AND idx=3").fetchone()[0]
        conn.execute("UPDATE tiles SET data=? WHERE level=0 AND idx=3", (tile[:(keep - 768) * 32],))
    assert first_bad(data_dir).ok, "a clean truncation is invisible without an outside checkpoint"
    path = tmp_path / "saved.checkpoint"
    path.write_text(saved)
    with trailseal.open(data_dir) as log:
        log.append([{**make_event(5000), "log": "other"}])  # a second log: the saved checkpoint is not its
    result = verify_cli(data_dir, "--checkpoint", str(path))
    assert result.exit_code == 1
    assert "log other: OK" in result.output
    assert "truncated" in result.output and f"first bad index {keep}" in result.output


def test_changed_tile_hash(sealed):
    data_dir, _ = sealed
    with db(data_dir) as conn:
        tile = bytearray(conn.execute("SELECT data FROM tiles WHERE level=0 AND idx=1").fetchone()[0])
        tile[5 * 32] ^= 1
        conn.execute("UPDATE tiles SET data=? WHERE level=0 AND idx=1", (bytes(tile),))
    assert first_bad(data_dir).first_bad_index == 256 + 5


def test_changed_upper_tile_hash(sealed):
    data_dir, _ = sealed
    with db(data_dir) as conn:
        tile = bytearray(conn.execute("SELECT data FROM tiles WHERE level=1 AND idx=0").fetchone()[0])
        tile[32] ^= 1
        conn.execute("UPDATE tiles SET data=? WHERE level=1 AND idx=0", (bytes(tile),))
    report = first_bad(data_dir)
    assert not report.ok and report.first_bad_index == 256
    assert "tile 1/0" in report.problem


def test_checkpoint_resigned_with_another_key(sealed):
    data_dir, _ = sealed
    skey, _ = generate("test.trailseal")
    other = Signer.from_skey(skey)
    with db(data_dir) as conn:
        note = conn.execute("SELECT note FROM checkpoints WHERE size=500").fetchone()[0]
        body = note.split("\n\n", 1)[0] + "\n"
        conn.execute("UPDATE checkpoints SET note=? WHERE size=500", (sign(body, [other]),))
    result = verify_cli(data_dir)
    assert result.exit_code == 1
    assert "checkpoint at size 500" in result.output
    with pytest.raises(Exception):  # noqa: B017
        with trailseal.open(data_dir) as log:
            open_note(log.store.checkpoint_at("default", 500), [log.verifier])


def test_entry_rewritten_as_text_is_caught(sealed):
    data_dir, _ = sealed
    with db(data_dir) as conn:
        conn.execute("UPDATE entries SET data = replace(data, 'orders', 'ordars') WHERE idx=?", (BAD,))
    assert first_bad(data_dir).first_bad_index == BAD
