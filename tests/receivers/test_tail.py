"""File tail: restarts, crashes between sealing and saving, rename and copytruncate rotation (live and while
stopped) — every line sealed exactly once, in order."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time

import pytest

import trailseal
from tests.conftest import make_event
from tests.receivers.conftest import notes, sealed, wait_for
from trailseal.receivers.tail import Tailer, group, tail


def line(n: int) -> str:
    stamp = "[10/Oct/2026:13:55:36 +0000]"
    return f'10.0.{n // 250 % 250}.{n % 250} - user{n % 17} {stamp} "GET /item/{n} HTTP/1.1" 200 {n}\n'


def numbers(trail) -> list[int]:
    return [int(e["request"]["path"].rsplit("/", 1)[1]) for e in sealed(trail)]


@pytest.fixture
def trail(data_dir):
    handle = trailseal.open(data_dir)
    yield handle
    handle.close()


def write(path, start: int, end: int) -> None:
    with open(path, "a") as out:
        out.write("".join(line(n) for n in range(start, end)))


def test_restart_mid_file_resumes_at_the_saved_offset(trail, tmp_path):
    log, state = tmp_path / "access.log", tmp_path / "tail.state"
    write(log, 0, 300)
    assert tail(trail, [log], "access_log", state, once=True).sealed == 300
    write(log, 300, 450)
    with open(log, "a") as out:
        out.write(line(450)[:30])  # a line still being written: not read yet
    assert tail(trail, [log], "access_log", state, once=True).sealed == 150
    with open(log, "a") as out:
        out.write(line(450)[30:])
    stats = tail(trail, [log], "access_log", state, once=True)
    assert stats.sealed == 1 and numbers(trail) == list(range(451))
    saved = json.loads(state.read_text())["files"][str(log)]["current"]
    assert saved["offset"] == log.stat().st_size
    event = sealed(trail)[0]
    assert event["id"].startswith("tail:") and event["attributes"]["log.file.path"] == str(log)
    assert event["attributes"]["log.file.offset"] == 0


def test_a_crash_between_sealing_and_saving_dedupes_on_replay(trail, tmp_path, monkeypatch):
    log, state = tmp_path / "access.log", tmp_path / "tail.state"
    write(log, 0, 1000)
    calls = {"n": 0}
    real_save = Tailer.save

    def crash_on_third_save(self):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("power cut")  # the third chunk is sealed, its offset never saved
        real_save(self)

    monkeypatch.setattr(Tailer, "save", crash_on_third_save)
    with pytest.raises(RuntimeError, match="power cut"):
        Tailer(trail, [str(log)], "access_log", state, batch=100).run(once=True)
    assert trail.store.tree_size("default") == 300
    assert json.loads(state.read_text())["files"][str(log)]["current"]["offset"] == len(
        "".join(line(n) for n in range(200))
    )
    monkeypatch.setattr(Tailer, "save", real_save)
    stats = Tailer(trail, [str(log)], "access_log", state, batch=100).run(once=True)
    assert stats.sealed == 800  # 100 replayed (answered with their original receipts) + 700 new
    assert numbers(trail) == list(range(1000))


def run_live(trail, log, state, **options) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    tailer = Tailer(trail, [str(log)], "access_log", state, rotate_grace=0.3, settle=0.1, **options)
    thread = threading.Thread(target=tailer.run, kwargs={"stop": stop, "poll": 0.02}, daemon=True)
    thread.start()
    return stop, thread


def writer(path, start: int, end: int, pause_every: int = 25) -> None:
    for n in range(start, end):
        with open(path, "a") as out:
            out.write(line(n))
        if n % pause_every == 0:
            time.sleep(0.003)


def test_rename_rotation_while_running(trail, tmp_path):
    log, state = tmp_path / "app.log", tmp_path / "tail.state"
    write(log, 0, 50)
    stop, thread = run_live(trail, log, state)
    try:
        writer(log, 50, 400)
        os.rename(log, tmp_path / "app.log.1")
        writer(tmp_path / "app.log.1", 400, 420)  # the app has not reopened its file yet
        writer(log, 420, 800)
        os.rename(tmp_path / "app.log.1", tmp_path / "app.log.2")
        os.rename(log, tmp_path / "app.log.1")
        writer(log, 800, 900)
        wait_for(lambda: trail.store.tree_size("default") >= 900, timeout=20)
    finally:
        stop.set()
        thread.join(10)
    assert numbers(trail) == list(range(900))


def test_copytruncate_while_running(trail, tmp_path):
    log, state = tmp_path / "app.log", tmp_path / "tail.state"
    stop, thread = run_live(trail, log, state)
    try:
        for start in (0, 300, 600):
            writer(log, start, start + 250)
            wait_for(lambda s=start: trail.store.tree_size("default") >= s + 100)
            write(log, start + 250, start + 300)  # very likely not read yet when the copy is made
            shutil.copyfile(
                log, tmp_path / "app.log.1"
            )  # logrotate copytruncate: copy, then truncate in place
            os.truncate(log, 0)
            wait_for(lambda s=start: trail.store.tree_size("default") >= s + 300)  # before the next rotation
        writer(log, 900, 950)
        wait_for(lambda: trail.store.tree_size("default") >= 950, timeout=20)
    finally:
        stop.set()
        thread.join(10)
    assert numbers(trail) == list(range(950))


@pytest.mark.parametrize("rotation", ["rename", "copytruncate"])
def test_rotation_while_stopped(trail, tmp_path, rotation):
    log, state = tmp_path / "app.log", tmp_path / "tail.state"
    write(log, 0, 100)
    tail(trail, [log], "access_log", state, once=True)
    write(log, 100, 130)  # written while trailseal was down, then rotated away
    if rotation == "rename":
        os.rename(log, tmp_path / "app.log.1")
    else:
        shutil.copyfile(log, tmp_path / "app.log.1")
        os.truncate(log, 0)
    write(log, 130, 160)
    tail(trail, [log], "access_log", state, once=True)
    tail(trail, [log], "access_log", state, once=True)
    assert numbers(trail) == list(range(160))


def test_bad_lines_are_recorded_and_skipped(trail, tmp_path, monkeypatch):
    import trailseal.receivers.tail as tail_module

    monkeypatch.setattr(tail_module, "READ_SIZE", 4096)
    log, state = tmp_path / "access.log", tmp_path / "tail.state"
    with open(log, "wb") as out:
        out.write(
            line(0).encode()
            + b"\xff\xfe binary junk\n"
            + b"z" * 9000
            + b"\n"
            + line(1).encode()
            + b"not an access line\n"
            + line(2).encode()
        )
    stats = tail(trail, [log], "access_log", state, once=True)
    assert numbers(trail) == [0, 1, 2] and stats.rejected == 3
    found = notes(trail)
    assert sum(n["attributes"]["rejected"] for n in found) == 3
    assert any("longer than 4096" in e["reason"] for n in found for e in n["attributes"]["first_errors"])
    assert all(n["id"].startswith("tail-rejected:") for n in found)
    tail(trail, [log], "access_log", state, once=True)
    assert len(notes(trail)) == len(found)  # nothing is read twice


def test_a_line_privacy_protection_refuses_is_rejected_and_the_file_goes_on(trail, tmp_path):
    """An NDJSON event just under the size limit whose emails, masked, no longer fit: that line is
    refused with the reason, the lines around it are sealed and the offset moves past it."""
    log, state = tmp_path / "app.ndjson", tmp_path / "tail.state"
    lines = [
        make_event(n, attributes={"message": text})
        for n, text in enumerate(("before", "mail a@b.co " * 5400, "after"))
    ]
    log.write_text("".join(json.dumps(e) + "\n" for e in lines))
    stats = tail(trail, [log], "ndjson", state, once=True)
    assert [e["attributes"]["message"] for e in sealed(trail)] == ["before", "after"]
    assert stats.rejected == 1 and "limit" in " ".join(stats.reasons)
    tail(trail, [log], "ndjson", state, once=True)
    assert len(sealed(trail)) == 2  # nothing is read twice


def test_formats_with_their_own_ids_and_continuations(trail, tmp_path):
    events = tmp_path / "events.ndjson"
    events.write_text(
        json.dumps(
            {
                "id": "evt-1",
                "time": "2026-01-01T00:00:00Z",
                "category": "admin",
                "action": "user.create",
                "outcome": "success",
                "actor": {"id": "root"},
                "source": {"component": "iam", "kind": "app"},
            }
        )
        + "\n"
    )
    tail(trail, [events], "ndjson", tmp_path / "a.state", once=True)
    tail(trail, [events], "ndjson", tmp_path / "b.state", once=True)  # a second reader of the same file
    assert [e["id"] for e in sealed(trail)] == ["evt-1"]
    multi = tmp_path / "system.log"
    multi.write_text(
        "Mar  1 10:00:00 mac app[1]: first part\n\tcontinued here\nMar  1 10:00:01 mac app[1]: next\n"
    )
    tail(trail, [multi], "syslog", tmp_path / "c.state", ctx={"year": 2026}, log_name="mac", once=True)
    messages = [e["attributes"]["message"] for e in sealed(trail, "mac")]
    assert messages == ["first part\n\tcontinued here", "next"]


def test_grouping_rules():
    data = b"a\n\tb\n\nc\n d\n"
    records, end = group(data, 100, "continued", settled=True, final=False)
    assert [(r.start, r.raw) for r in records] == [(100, b"a\n\tb"), (106, b"c\n d")] and end == 100 + len(
        data
    )
    records, end = group(data, 100, "continued", settled=False, final=False)
    assert [r.raw for r in records] == [b"a\n\tb"] and end == 106
    csv = b'2026-01-01 00:00:00 UTC,"multi\nline",x\n2026-01-01 00:00:01 UTC,"open\n'
    records, end = group(csv, 0, "csv", settled=True, final=False)
    assert [r.raw for r in records] == [b'2026-01-01 00:00:00 UTC,"multi\nline",x'] and end == csv.index(
        b"2026", 5
    )
    records, _ = group(b"x\n\ny\n", 0, "lines", settled=False, final=False)
    assert [(r.start, r.raw) for r in records] == [(0, b"x"), (3, b"y")]


def test_a_file_written_between_the_look_and_the_read_still_gets_its_fingerprint(
    trail, tmp_path, monkeypatch
):
    """The writer appends after the tailer saw an empty file and before it reads: the bytes read must still
    fingerprint the file, or a later copytruncate finds no copy and the rest of the file is lost."""
    log, state = tmp_path / "app.log", tmp_path / "tail.state"
    log.touch()
    tailer = Tailer(trail, [str(log)], "access_log", state, settle=0.0)
    tailer.step()  # opens the empty file: no fingerprint yet
    real_pread, raced = os.pread, []

    def pread_after_a_racing_write(fd, length, offset):
        if not raced and offset == 0 and os.fstat(fd).st_ino == log.stat().st_ino:
            raced.append(True)
            write(log, 0, 40)
        return real_pread(fd, length, offset)

    monkeypatch.setattr("trailseal.receivers.tail.os.pread", pread_after_a_racing_write)
    tailer.step()
    monkeypatch.setattr("trailseal.receivers.tail.os.pread", real_pread)
    assert raced and trail.store.tree_size("default") == 40
    write(log, 40, 60)
    shutil.copyfile(log, tmp_path / "app.log.1")
    os.truncate(log, 0)
    write(log, 60, 70)
    tailer.step()
    tailer.step()
    tailer.close()
    assert numbers(trail) == list(range(70))
