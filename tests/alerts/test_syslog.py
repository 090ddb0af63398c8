"""The syslog sink against real local listeners: RFC 5424 over UDP, TCP (octet counting) and TLS;
checked with a strict RFC 5424 pattern and read back by trailseal's own syslog parser."""

from __future__ import annotations

import re
import ssl

import pytest

from tests.alerts.conftest import closed_port, sample_alert, wait_for
from tests.api.test_real_server import make_cert
from trailseal.alerts.delivery import DeadLetter, Retry
from trailseal.alerts.syslog import SyslogSink, parse_address
from trailseal.formats import syslog as syslog_format

FAST = Retry(attempts=3, backoff=0.01, max_backoff=0.05)
RFC5424 = re.compile(
    rb"^<(?P<pri>\d{1,3})>1 (?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)) "
    rb"(?P<host>[!-~]{1,255}) (?P<app>[!-~]{1,48}) (?P<procid>[!-~]{1,128}) (?P<msgid>[!-~]{1,32}) "
    rb"(?P<sd>\[[^ \]]+( [^= \]]+=\"([^\"\\\]]|\\[\"\\\]])*\")*\]) \xef\xbb\xbf(?P<msg>.*)$",
    re.S,
)


def octet_frames(stream: bytes) -> list[bytes]:
    """RFC 6587 octet counting: `LEN SP MSG`, repeated."""
    frames = []
    while stream:
        length, _, rest = stream.partition(b" ")
        frames.append(rest[: int(length)])
        stream = rest[int(length):]
    return frames


def test_udp_gets_one_rfc5424_datagram_per_alert(listeners, tmp_path):
    listener = listeners("udp")
    sink = SyslogSink(parse_address(listener.address), "authpriv", DeadLetter(tmp_path / "dl"), FAST)
    sink.send(sample_alert())
    assert wait_for(lambda: listener.received, 5)
    match = RFC5424.match(listener.received[0])
    assert match, listener.received[0]
    assert int(match["pri"]) == 10 * 8 + 2  # authpriv, crit (high)
    assert match["time"] == b"2026-11-27T10:00:05.123456Z" and match["app"] == b"trailseal"
    assert match["msgid"] == b"alert"
    assert b'rule="f1a43fa4-751a-42bd-bb54-4bb6879ea7b4"' in match["sd"] and b'index="7"' in match["sd"]
    assert match["msg"].decode() == "[HIGH] Brute force from one IP (rule f1a43fa4-751a-42bd-bb54-4bb6879ea7b4)"


def test_trailseal_syslog_parser_reads_what_the_sink_sends(listeners, tmp_path):
    listener = listeners("udp")
    sink = SyslogSink(parse_address(listener.address), "local3", DeadLetter(tmp_path / "dl"), FAST)
    sink.send(sample_alert(title='quote " and ] and \\ inside', level="critical"))
    assert wait_for(lambda: listener.received, 5)
    (event,) = syslog_format.parse(listener.received[0])
    assert event["severity"] == "critical" and event["attributes"]["syslog.msgid"] == "alert"
    data = event["attributes"]["syslog.structured_data"]["trailseal@32473"]
    assert data["level"] == "critical" and data["author"] == "trailseal" and data["events"] == "12"
    assert event["attributes"]["message"].startswith('[CRITICAL] quote " and ] and \\ inside')
    assert RFC5424.match(listener.received[0])


def test_tcp_uses_octet_counting_and_keeps_long_messages_whole(listeners, tmp_path):
    listener = listeners("tcp")
    sink = SyslogSink(parse_address(listener.address), "authpriv", DeadLetter(tmp_path / "dl"), FAST)
    sink.send(sample_alert(title="é" * 3000))
    assert wait_for(lambda: listener.received, 5)
    (frame,) = octet_frames(listener.received[0])
    match = RFC5424.match(frame)
    assert match and match["msg"].decode().count("é") == 3000


def test_udp_cuts_long_text_to_2048_bytes_at_a_character_boundary(listeners, tmp_path):
    listener = listeners("udp")
    sink = SyslogSink(parse_address(listener.address), "authpriv", DeadLetter(tmp_path / "dl"), FAST)
    sink.send(sample_alert(title="é" * 3000))
    assert wait_for(lambda: listener.received, 5)
    datagram = listener.received[0]
    assert len(datagram) <= 2048 and RFC5424.match(datagram)
    datagram.decode("utf-8")  # no split character


def test_tls_with_a_private_ca(listeners, tmp_path):
    ca = make_cert(tmp_path / "ca", "alerts test CA", ca=True)
    server_cert = make_cert(tmp_path / "syslog", "127.0.0.1", issuer=ca)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(server_cert[0], server_cert[1])
    listener = listeners("tls", context)
    untrusted = SyslogSink(parse_address(listener.address), "authpriv", DeadLetter(tmp_path / "bad.dl"), FAST)
    untrusted.send(sample_alert())
    assert "CERTIFICATE_VERIFY_FAILED" in DeadLetter(tmp_path / "bad.dl").read()[0]["error"]
    sink = SyslogSink(parse_address(listener.address), "authpriv", DeadLetter(tmp_path / "dl"), FAST, ca_file=ca[0])
    sink.send(sample_alert())
    assert wait_for(lambda: any(listener.received), 5)
    frames = [f for chunk in listener.received if chunk for f in octet_frames(chunk)]
    assert len(frames) == 1 and RFC5424.match(frames[0]) and sink.delivered == 1


def test_a_refused_tcp_connection_is_retried_then_dead_lettered(tmp_path):
    dead = DeadLetter(tmp_path / "dl")
    sink = SyslogSink(parse_address(f"tcp://127.0.0.1:{closed_port()}"), "authpriv", dead, FAST)
    sink.send(sample_alert())
    (record,) = dead.read()
    assert record["sink"] == "syslog" and "ConnectionRefusedError" in record["error"]


@pytest.mark.parametrize("address", ["udp:/host:514", "http://host:514", "tcp://host", "udp://host:70000",
                                     "tcp://bad host:601"])
def test_bad_addresses_are_refused_with_the_expected_shape(address):
    with pytest.raises(ValueError, match="udp://HOST:PORT"):
        parse_address(address)
