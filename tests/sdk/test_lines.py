"""The forwarder's fast path: request records rendered by shape give byte for byte the line the full path
(``Forwarded`` + ``HttpAuditor.render`` + the JSON encoder) gives; what a shape cannot express goes the full
way; frames are read in place and a malformed record costs only itself."""

from __future__ import annotations

import gc
import os
import time
import uuid

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trailseal.sdk.client import Client, Clock, Ids
from trailseal.sdk.forwarder import RECORDS, FrameReader, frame
from trailseal.sdk.lines import RecordLines, json_text
from trailseal.sdk.spool import Spool
from trailseal.sdk.web import Forwarded, HttpAuditor

TRACE = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
NS = 1_764_300_000_123_456_789


def record(**changes) -> list:
    """A record as the forwarder decodes it (msgpack: lists, header values as bytes)."""
    fields = {"index": 0, "ns": NS, "elapsed": 0.0001234, "method": "GET", "path": "/items/42",
              "template": "/items/{item_id}", "status": 200, "size": 2, "error": None, "actor": None,
              "peer": ["127.0.0.1", 51234], "forwarded_for": None, "user_agent": None, "traceparent": None}
    fields.update(changes)
    return list(fields.values())


@pytest.fixture
def setup(tmp_path):
    client = Client("http://127.0.0.1:9", "t", spool_dir=tmp_path / "spool", log="web", max_backoff=5)
    auditor = HttpAuditor(client, transport="thread", trusted_proxies=["10.0.0.0/8"])
    yield client, auditor
    client.close(timeout=0.1)


def ids(count: int) -> list[str]:
    return ["ID"] * count


def full_line(client: Client, auditor: HttpAuditor, rec: list) -> bytes:
    event = Forwarded(auditor, rec).to_event("ID", Clock()(rec[1]), client._source, client.log_name)
    return msgspec.json.encode(event) + b"\n"


SHAPED = [
    record(),
    record(elapsed=3.5, size=10**9, status=404, template="/{a}", peer=None, user_agent=b"ua"),
    record(method="POST", template="/login", status=401, elapsed=1e-08, peer=["10.0.0.1", 1],
           forwarded_for=b"203.0.113.7, 10.0.0.2", user_agent='odd "agent" \\ \u00e9 {x}\t'.encode(),
           traceparent=TRACE),
    record(method="delete", template="/items/<int:item_id>", status=204, size=0, peer="192.0.2.1"),
    record(status=500, traceparent=b"ff-not-a-trace"),
]


@pytest.mark.parametrize("rec", SHAPED)
def test_a_shaped_line_is_the_full_path_line(setup, rec):
    client, auditor = setup
    lines = RecordLines([auditor], ids, Clock(), client._source, client.log_name)
    first, again = lines.lines([rec, rec])  # the shape made, then used
    assert first == again == full_line(client, auditor, rec)
    assert msgspec.json.decode(first)["log"] == "web"


@pytest.mark.parametrize("rec", [record(actor={"id": "alice"}), record(error="RuntimeError: x"),
                                 record(template=None), record(template=""), record(status="200"),
                                 record(size=None), record(elapsed=1)])
def test_what_a_shape_cannot_express_goes_the_full_way(setup, rec):
    client, auditor = setup
    lines = RecordLines([auditor], ids, Clock(), client._source, client.log_name)
    assert lines.lines([rec]) == [None]


def test_shapes_are_remembered_per_route_status_and_present_values(setup):
    client, auditor = setup
    lines = RecordLines([auditor], ids, Clock(), client._source, client.log_name)
    for rec in [record(), record(path="/items/7"), record(user_agent=b"a"), record(user_agent=b"b"),
                record(status=404)]:
        assert lines.lines([rec]) == [full_line(client, auditor, rec)]
    assert len(lines.shapes) == 3  # 200 without a user agent, 200 with one, 404


def test_json_text_escapes_what_json_must():
    assert json_text("10.0.0.1") == "10.0.0.1"
    assert json_text('a"b\\c\n\u00e9') == msgspec.json.encode('a"b\\c\n\u00e9')[1:-1].decode()


def test_spool_records_keeps_order_and_counts_a_malformed_record(setup, tmp_path):
    client, auditor = setup
    lines = RecordLines([auditor], ids, Clock(), client._source, client.log_name)

    def full_path(rec: list) -> Forwarded:
        return Forwarded([auditor][rec[0]], rec)

    records = [record(path="/items/1"), [7, "not a record"], record(actor={"id": "bob"}), record(status=404)]
    client.spool_records(records, lines.lines(records), full_path)
    assert client.stats.invalid == 1
    client.close(timeout=0.1)
    spooled = [msgspec.json.decode(line) for line in Spool(tmp_path / "spool").read(10, 1 << 20).lines]
    assert [(e["actor"]["id"], e["request"]["status"]) for e in spooled] == [("anonymous", 200), ("bob", 200),
                                                                          ("anonymous", 404)]


def test_frame_reader_reads_frames_whole_split_and_batched():
    encoder = msgspec.msgpack.Encoder()
    frames = [frame(encoder, [RECORDS, [[i, "x" * (i * 300)]]]) for i in range(6)]
    data = b"".join(frames)
    read_fd, write_fd = os.pipe()
    reader = FrameReader(read_fd)
    os.write(write_fd, data[:5])  # less than one frame: nothing yet
    assert reader.buffered() is None
    assert reader.read(time.monotonic() + 0.05) is None
    os.write(write_fd, data[5:])
    os.close(write_fd)
    got = [reader.read(time.monotonic() + 1)]
    while (message := reader.buffered()) is not None:  # the rest arrived in the same read
        got.append(message)
    assert reader.read() is None  # end of input
    assert [m[1][0][0] for m in got] == list(range(6)) and got[5][1][0][1] == "x" * 1500
    os.close(read_fd)


def test_ids_in_a_row_are_uuid7_unique_and_increasing_with_single_ones():
    made = Ids()
    got: list[str] = []
    for n in range(600):
        got += made.many(n % 9) if n % 3 else [made()]
    assert len(set(got)) == len(got) and got == sorted(got)
    assert all(uuid.UUID(i).version == 7 and uuid.UUID(i).variant == uuid.RFC_4122 and str(uuid.UUID(i)) == i
               for i in got)


ADDRESSES = st.sampled_from(["127.0.0.1", "10.0.0.1", "::1", "", 'we"ird\\\u00e9', "192.0.2.1"])
HEADER = st.one_of(st.none(), st.binary(max_size=40), st.just(TRACE), st.just(b"203.0.113.7, 10.0.0.2"))
RECORDS_ = st.builds(
    lambda peer, port, status, template, size, elapsed, ua, xff, tp, method: record(
        peer=None if peer is None else [peer, port], status=status, template=template, size=size,
        elapsed=elapsed, user_agent=ua, forwarded_for=xff, traceparent=tp, method=method),
    st.one_of(st.none(), ADDRESSES), st.integers(0, 65535), st.sampled_from([200, 204, 401, 404, 500, 999]),
    st.sampled_from(["/items/{item_id}", "/login", "/a/<int:b>"]), st.integers(0, 10**12),
    st.floats(0, 100, allow_nan=False), HEADER, HEADER, HEADER, st.sampled_from(["GET", "POST", "put"]))


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(RECORDS_, min_size=1, max_size=12))
def test_a_batch_of_lines_is_what_the_full_path_renders_record_by_record(setup, records):
    client, auditor = setup
    lines = RecordLines([auditor], ids, Clock(), client._source, client.log_name)
    for _ in range(2):  # shapes and addresses made, then remembered
        got = lines.lines(records)
        assert got == [full_line(client, auditor, rec) for rec in records]  # all of them have a shape


def test_the_forwarder_keeps_the_collector_off_its_hot_path():
    from trailseal.sdk.forwarder_process import GC_THRESHOLDS, quiet_gc

    before = gc.get_threshold()
    try:
        quiet_gc()
        assert gc.get_threshold() == GC_THRESHOLDS and GC_THRESHOLDS[0] >= 10_000
        assert gc.get_freeze_count() > 0  # start-up objects out of the collector's walks
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
