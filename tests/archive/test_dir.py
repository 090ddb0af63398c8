"""The directory target: read-only files, retention and holds enforced by trailseal; Archive on top of it."""

from __future__ import annotations

import stat
from datetime import timedelta

import pytest

from tests.archive.helpers import T0, US
from trailseal.archive import Archive, ArchiveError, RetentionLocked, open_archive
from trailseal.archive import segment as seg
from trailseal.archive.crypto import FileKeys, StaticKeys, add_key_file, new_key
from trailseal.archive.dir import DirTarget
from trailseal.retention import tile_reader

UNTIL = T0 + timedelta(days=365)


def test_put_get_read_only_and_never_overwritten(tmp_path):
    target = DirTarget(tmp_path / "a")
    target.put("default/auth/1.tseg", b"blob", UNTIL)
    path = tmp_path / "a" / "default" / "auth" / "1.tseg"
    assert target.get("default/auth/1.tseg") == b"blob"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert target.keys() == ["default/auth/1.tseg"] and target.keys("other") == []
    assert target.retain_until("default/auth/1.tseg") == UNTIL
    with pytest.raises(ArchiveError, match="never reused"):
        target.put("default/auth/1.tseg", b"other", UNTIL)
    with pytest.raises(ArchiveError, match="no segment"):
        target.get("default/auth/2.tseg")


@pytest.mark.parametrize("key", ["../escape", "/abs/key", "", "x.retain"])
def test_bad_keys(tmp_path, key):
    with pytest.raises(ArchiveError, match="bad archive key"):
        DirTarget(tmp_path).put(key, b"x", UNTIL)


def test_delete_is_refused_until_retention_ends_and_while_held(tmp_path):
    target = DirTarget(tmp_path)
    target.put("k.tseg", b"blob", UNTIL)
    with pytest.raises(RetentionLocked, match="retained until"):
        target.delete("k.tseg", UNTIL - US)
    target.set_hold("k.tseg", True)
    with pytest.raises(RetentionLocked, match="legal hold"):
        target.delete("k.tseg", UNTIL)
    target.set_hold("k.tseg", False)
    target.delete("k.tseg", UNTIL)
    assert target.keys() == []


def test_replace_keeps_or_extends_retention_only(tmp_path):
    target = DirTarget(tmp_path)
    target.put("k.tseg", b"old", UNTIL)
    with pytest.raises(RetentionLocked, match="cannot be shortened"):
        target.replace("k.tseg", b"new", UNTIL - US)
    target.replace("k.tseg", b"new", UNTIL)
    assert target.get("k.tseg") == b"new" and stat.S_IMODE((tmp_path / "k.tseg").stat().st_mode) == 0o444
    assert target.keys() == ["k.tseg"]


def test_archive_write_open_and_rotate(sealed, tmp_path, keys):
    archive = Archive(DirTarget(tmp_path / "archive"), keys)
    stored = dict(sealed.store.read_entries("default", 0, 1000))
    written = [archive.write("default", "auth", [(i, stored[i]) for i in range(start, start + 100)],
                             checkpoint=sealed.checkpoint(), size=1000, read_tile=tile_reader(sealed.store, "default"),
                             retain_until=UNTIL, created=T0) for start in (0, 500)]
    assert [w.manifest.start for w in written] == [0, 500]
    assert dict(archive.open(written[1].key).entries())[550] == stored[550]
    before = {w.key: seg.split(archive.target.get(w.key)).ciphertext for w in written}
    archive.keys = StaticKeys({"k2": new_key(), "k1": keys._keys["k1"]})
    report = archive.rotate()
    assert sorted(report.rewrapped) == sorted(before) and report.current == []
    archive.keys = StaticKeys({"k2": archive.keys._keys["k2"]})
    for key, ciphertext in before.items():
        assert seg.split(archive.target.get(key)).ciphertext == ciphertext
        assert archive.verify(key, sealed.verifier()).ok
        assert archive.target.retain_until(key) == UNTIL
    assert archive.rotate().rewrapped == []


def test_archive_from_config(tmp_path):
    add_key_file(tmp_path / "archive.keys", "2026")
    archive = open_archive({"type": "dir", "path": "segments", "key_file": "archive.keys"}, tmp_path)
    assert isinstance(archive.target, DirTarget) and archive.target.root == tmp_path / "segments"
    assert isinstance(archive.keys, FileKeys) and archive.keys.current() == "2026"
    with pytest.raises(ArchiveError, match="use 'dir' or 's3'"):
        open_archive({"type": "tape"}, tmp_path)
