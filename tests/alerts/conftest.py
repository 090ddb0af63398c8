"""Real local receivers for the alert sinks: an HTTP server with scripted answers, an SMTP server
(aiosmtpd), and UDP/TCP/TLS syslog listeners; plus one realistic alert payload."""

from __future__ import annotations

import json
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from aiosmtpd.controller import Controller

from tests.api.server import free_port
from tests.conftest import wait_for  # noqa: F401 - the alert tests import it from here


def sample_alert(title: str = "Brute force from one IP", level: str = "high") -> dict:
    """What DetectionService hands the sinks: the sealed finding plus where it is sealed."""
    return {
        "log": "trailseal", "time": "2026-11-27T10:00:05.123456Z", "category": "finding",
        "action": "detect.alert", "outcome": "success", "severity": level, "reason": title,
        "actor": {"id": "trailseal-detect", "type": "system"},
        "source": {"component": "trailseal-detect", "kind": "trailseal", "format": "sigma"},
        "target": {"type": "rule", "id": "f1a43fa4-751a-42bd-bb54-4bb6879ea7b4", "name": title},
        "attributes": {"rule_id": "f1a43fa4-751a-42bd-bb54-4bb6879ea7b4", "title": title, "level": level,
                       "author": "trailseal", "tags": ["attack.t1110", "attack.credential-access"],
                       "events": [["default", i] for i in range(10, 22)],
                       "group": {"c-ip": "198.51.100.9"},
                       "first_time": "2026-11-27T10:00:00.000000Z", "last_time": "2026-11-27T10:00:04.000000Z"},
        "sealed": {"log": "trailseal", "index": 7, "leaf_hash": "ab" * 32},
    }


class HttpReceiver:
    """A real HTTP server; `answers` is consumed one per request (then 204), `check` may refuse a body."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict, bytes]] = []
        self.answers: list[tuple[int, dict, bytes]] = []
        self.check: Callable[[bytes], str | None] | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.path, dict(self.headers), body))
                status, headers, reply = receiver.answers.pop(0) if receiver.answers else (204, {}, b"")
                problem = receiver.check(body) if receiver.check else None
                if problem:
                    status, headers, reply = 400, {}, problem.encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _, _, body in self.requests]


@pytest.fixture
def http_receiver():
    receiver = HttpReceiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


class MailHandler:
    """aiosmtpd handler: keeps every accepted message; `refuse_rcpt` scripts RCPT answers."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.rcpt_answers: list[str] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd API
        if self.rcpt_answers:
            return self.rcpt_answers.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server():
    """(handler, port) of a real SMTP server on loopback."""
    handler = MailHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


def tls_smtp(handler: MailHandler, context: ssl.SSLContext) -> Controller:
    """An SMTP server that insists on STARTTLS before MAIL."""
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), tls_context=context,
                            require_starttls=True)
    controller.start()
    return controller


class SyslogListener:
    """UDP datagrams, or TCP/TLS streams (whole connection kept as bytes)."""

    def __init__(self, transport: str, context: ssl.SSLContext | None = None) -> None:
        self.received: list[bytes] = []
        self.transport = transport
        listener = self
        if transport == "udp":
            class Udp(socketserver.BaseRequestHandler):
                def handle(self):
                    listener.received.append(self.request[0])

            self.server: socketserver.BaseServer = socketserver.ThreadingUDPServer(("127.0.0.1", 0), Udp)
        else:
            class Tcp(socketserver.StreamRequestHandler):
                def handle(self):
                    sock = self.request
                    if context is not None:
                        sock = context.wrap_socket(sock, server_side=True)
                    chunks = []
                    try:
                        while chunk := sock.recv(65536):
                            chunks.append(chunk)
                    except (ssl.SSLError, OSError):
                        pass  # a peer that closes without TLS close_notify: keep what arrived
                    listener.received.append(b"".join(chunks))

            self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Tcp)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.address = f"{transport}://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listeners():
    made: list[SyslogListener] = []

    def make(transport: str, context: ssl.SSLContext | None = None) -> SyslogListener:
        made.append(SyslogListener(transport, context))
        return made[-1]

    yield make
    for listener in made:
        listener.close()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
