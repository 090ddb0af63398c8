"""Syslog listeners with real senders (Python's SysLogHandler, rsyslog, util-linux logger, a TLS client),
hostile frames, and backpressure."""

from __future__ import annotations

import logging
import logging.handlers
import shutil
import socket
import ssl
import subprocess
import time

import pytest

import trailseal
from tests.api.test_real_server import make_cert
from tests.receivers.conftest import notes, sealed, wait_for
from trailseal.receivers.records import relay_header
from trailseal.receivers.syslog import SyslogThread, tls_context

RFC5424 = (
    b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
    b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][meta seq="7"] An application event'
)
SU_FAIL = (
    b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
    b"'su root' failed for lonvick on /dev/pts/8"
)


def octets(*messages: bytes) -> bytes:
    return b"".join(str(len(m)).encode() + b" " + m for m in messages)


@pytest.fixture
def trail(data_dir):
    handle = trailseal.open(data_dir)
    yield handle
    handle.close()


@pytest.fixture
def listener(trail):
    with SyslogThread(trail, udp=("127.0.0.1", 0), tcp=("127.0.0.1", 0)) as server:
        yield server


def settle(server: SyslogThread, trail, count: int, log: str = "default") -> list[dict]:
    """Wait until ``count`` events of ``log`` are sealed and the intake is idle."""
    wait_for(lambda: trail.store.tree_size(log) >= count)
    server.drain()
    return sealed(trail, log)


@pytest.mark.parametrize("kind", ["udp", "tcp"])
def test_python_syslog_handler(listener, trail, kind):
    socktype = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    handler = logging.handlers.SysLogHandler(
        address=listener.addresses[kind], socktype=socktype, facility=logging.handlers.SysLogHandler.LOG_AUTH
    )
    handler.ident = "billing[77]: "
    logger = logging.getLogger(f"syslog-{kind}")
    logger.propagate = False
    logger.addHandler(handler)
    for n in range(20):
        logger.warning("payment %d refused", n)
    logger.error("database down")
    handler.close()
    events = settle(listener, trail, 21)
    assert [e["attributes"]["message"] for e in events] == [f"payment {n} refused" for n in range(20)] + [
        "database down"
    ]
    first = events[0]
    assert first["actor"] == {"id": "billing", "type": "system"} and first["attributes"]["process.pid"] == 77
    assert first["attributes"]["syslog.facility"] == "auth" and first["severity"] == "low"
    assert (
        first["attributes"]["syslog.transport"] == kind and first["attributes"]["syslog.time_missing"] is True
    )
    assert (
        first["attributes"]["network.peer.address"] == "127.0.0.1" and first["source"]["host"] == "127.0.0.1"
    )
    assert events[-1]["severity"] == "medium" and listener.stats.rejected == 0


def test_rsyslog_forwards_octet_counted_rfc5424(listener, trail, tmp_path):
    rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    assert shutil.os.path.exists(rsyslogd), "rsyslog is not installed: apt-get install rsyslog"
    source = tmp_path / "app.log"
    source.write_text("".join(f"order {n} shipped\n" for n in range(10)))
    (tmp_path / "work").mkdir()
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(f'''
global(workDirectory="{tmp_path / "work"}")
module(load="imfile" mode="polling" PollingInterval="1")
input(type="imfile" File="{source}" Tag="shipping" Facility="local3" Severity="notice" freshStartTail="off")
action(type="omfwd" target="127.0.0.1" port="{listener.addresses["tcp"][1]}" protocol="tcp"
       TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
''')
    proc = subprocess.Popen(
        [rsyslogd, "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslog.pid")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: trail.store.tree_size("default") >= 10, timeout=20)
        with source.open("a") as out:
            out.write("order 10 shipped\n")
        events = settle(listener, trail, 11)
    finally:
        proc.terminate()
        proc.wait(10)
    assert [e["attributes"]["message"] for e in events] == [f"order {n} shipped" for n in range(11)]
    event = events[0]
    assert event["actor"]["id"] == "shipping" and event["attributes"]["syslog.facility"] == "local3"
    assert (
        event["attributes"]["syslog.severity"] == "notice"
        and "syslog.time_missing" not in event["attributes"]
    )
    assert listener.stats.rejected == 0


def test_logger_sends_structured_data(listener, trail):
    port = listener.addresses["tcp"][1]
    subprocess.run(
        [
            "logger",
            "--server",
            "127.0.0.1",
            "--port",
            str(port),
            "--tcp",
            "--octet-count",
            "--rfc5424",
            "--tag",
            "deploy",
            "--msgid",
            "REL",
            "--sd-id",
            "release@32473",
            "--sd-param",
            'version="2.4.1"',
            "--sd-param",
            'by="ci"',
            "release rolled out",
        ],
        check=True,
        timeout=10,
    )
    (event,) = settle(listener, trail, 1)
    data = event["attributes"]["syslog.structured_data"]
    assert data["release@32473"] == {"version": "2.4.1", "by": "ci"}
    assert (
        event["attributes"]["syslog.msgid"] == "REL"
        and event["attributes"]["message"] == "release rolled out"
    )


def test_tls_listener(trail, tmp_path):
    ca = make_cert(tmp_path / "ca", "syslog CA", ca=True)
    cert, key, *_ = make_cert(tmp_path / "server", "127.0.0.1", issuer=ca)
    with SyslogThread(trail, tls=("127.0.0.1", 0), ssl_context=tls_context(cert, key)) as server:
        context = ssl.create_default_context(cafile=ca[0])
        with (
            socket.create_connection(server.addresses["tls"]) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(octets(RFC5424, b"garbage", SU_FAIL))
        events = settle(server, trail, 2)
        assert server.stats.rejected == 1
    assert events[0]["attributes"]["syslog.structured_data"]["meta"] == {"seq": "7"}
    assert events[1]["action"] == "privilege.su" and events[1]["outcome"] == "failure"
    assert events[1]["attributes"]["syslog.transport"] == "tls"


def send(address, data: bytes, pause: float = 0.0) -> None:
    with socket.create_connection(address) as sock:
        for piece in data if isinstance(data, list) else [data]:
            sock.sendall(piece)
            time.sleep(pause)


def test_hostile_octet_counted_stream_keeps_the_good_frames(listener, trail):
    good = [RFC5424, SU_FAIL, b"<13>Oct 11 22:14:15 host app: third"]
    stream = [
        octets(good[0]),
        b"12 <13>1 short",  # count too small: the frame is cut, its rest is junk
        b"tail of the cut frame ",
        octets(b"\xff\xfe\x00binary\x80junk"),  # binary junk, invalid UTF-8, in a proper frame
        b"99999999999 x ",  # a count that is no number we accept
        octets(good[1]),
        b"70000 <13>1 oversized",  # over the 65535 limit
        octets(good[2]),
        b"40 <13>1 never finished",  # truncated by the end of the connection
    ]
    send(listener.addresses["tcp"], stream, pause=0.01)
    wait_for(
        lambda: any(r.startswith("truncated frame") for r in listener.stats.reasons)
    )  # the close is seen
    listener.drain()
    messages = [e["attributes"]["message"] for e in sealed(trail)]
    assert messages[0] == "An application event" and "third" in messages
    assert any(m.startswith("'su root'") for m in messages)
    assert listener.stats.rejected >= 4 and listener.stats.failed == 0
    note = notes(trail)
    assert sum(n["attributes"]["rejected"] for n in note) == listener.stats.rejected
    reasons = " ".join(listener.stats.reasons)
    assert "exceeds the limit" in reasons and "truncated frame" in reasons and "bad octet count" in reasons


def test_hostile_lf_stream_keeps_the_good_lines(trail):
    with SyslogThread(trail, tcp=("127.0.0.1", 0), max_frame=1000) as server:
        lines = [
            b"<13>Oct 11 22:14:15 host app: one\n",
            b"\xff\xfe binary \x00\x01\n",
            b"<13>" + b"x" * 3000,
            b" still too long\n",
            b"<13>Oct 11 22:14:16 host app: two\r\n",
            b"<999>Oct 11 22:14:16 h a: bad pri\n",
            b"<13>Oct 11 22:14:17 host app: three",
        ]
        send(server.addresses["tcp"], lines, pause=0.01)
        wait_for(lambda: server.stats.records >= 6)
        server.drain()
        assert [e["attributes"]["message"] for e in sealed(trail)] == ["one", "two", "three"]
        assert server.stats.rejected == 3


def test_udp_oversized_and_junk(trail):
    with SyslogThread(trail, udp=("127.0.0.1", 0), max_frame=500) as server:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for datagram in (b"<13>" + b"y" * 600, b"\x00\xff junk", SU_FAIL, b"\n"):
                sock.sendto(datagram, server.addresses["udp"])
        wait_for(lambda: server.stats.records >= 3)
        server.drain()
        assert len(sealed(trail)) == 1 and server.stats.rejected == 2


def test_backpressure_stops_reading_and_loses_nothing(trail):
    trail.sealer.max_queue_events = 300  # the sealer refuses big batches: the intake must wait, not drop
    with SyslogThread(trail, tcp=("127.0.0.1", 0), batch=200, max_pending=400) as server:
        total = 3000
        frames = octets(*[b"<14>1 2026-01-01T00:00:00Z host app - - - event %d" % n for n in range(total)])
        send(server.addresses["tcp"], frames)
        wait_for(lambda: trail.store.tree_size("default") >= total, timeout=30)
        server.drain()
        assert server.server.intake.pauses > 0
    events = sealed(trail)
    assert [e["attributes"]["message"] for e in events] == [f"event {n}" for n in range(total)]


def test_relay_header_only_for_pri_only_messages():
    from datetime import UTC, datetime

    moment = datetime(2026, 3, 5, 7, 8, 9, tzinfo=UTC)
    assert relay_header(b"<14>app: hi", moment, "10.0.0.1") == b"<14>Mar  5 07:08:09 10.0.0.1 app: hi"
    assert relay_header(b"<14>1 2026-01-01T00:00:00Z h a - - - x", moment, "h") is None
    assert relay_header(b"<14>Oct 11 22:14:15 host app: x", moment, "h") is None
    assert relay_header(b"no pri", moment, "h") is None


def test_a_frame_privacy_protection_refuses_is_rejected_and_the_stream_goes_on(listener, trail):
    """A message just under the event size limit, full of emails: each `[email]` mask is longer than the
    address, so the protected event no longer fits. That frame alone is refused, with the reason; the
    intake keeps sealing (it once lost every later frame: the error stopped its batch task)."""
    grows = b"<13>1 2026-03-01T10:00:00Z web app - - - " + b"mail a@b.co " * 5400
    send(listener.addresses["tcp"], [octets(b"<13>1 2026-03-01T10:00:00Z web app - - - before"), octets(grows),
                                     octets(b"<13>1 2026-03-01T10:00:00Z web app - - - after")], pause=0.05)
    events = settle(listener, trail, 2)
    assert [e["attributes"]["message"] for e in events] == ["before", "after"]
    assert listener.stats.rejected == 1 and listener.stats.failed == 0
    assert "limit" in " ".join(listener.stats.reasons)
    assert sum(n["attributes"]["rejected"] for n in notes(trail)) == 1
