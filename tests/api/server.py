"""A real trailseal server in a subprocess (uvicorn on a free loopback port), for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from trailseal.api.auth import TokenStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child process a test starts, SIGKILLs and stops (TERM, then KILL after ``grace`` seconds)."""

    proc: subprocess.Popen | None = None
    grace: float = 10

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(self.grace)
            except subprocess.TimeoutExpired:
                self.kill()


class Server(Process):
    """Start, SIGKILL and restart `trailseal serve` on one data dir."""

    def __init__(self, data_dir: Path, *args: str, env: dict[str, str] | None = None, scheme: str = "http"):
        self.data_dir, self.args, self.scheme = data_dir, args, scheme
        self.env = {**os.environ, **(env or {})}
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        store = TokenStore(data_dir)
        self.admin = store.create("admin", "e2e")[0]
        store.close()

    def token(self, log: str | None = None, role: str = "ingest") -> str:
        """A new token of ``role``, scoped to ``log`` when given."""
        store = TokenStore(self.data_dir)
        try:
            return store.create(role, logs=(log,) if log else ())[0]
        finally:
            store.close()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0, **client_args) -> Server:
        self.proc = subprocess.Popen([sys.executable, "-m", "trailseal.cli", "serve", "--data", str(self.data_dir),
                                      "--port", str(self.port), *self.args], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        plain = {"verify": False} if self.scheme == "http" else {}  # loading CA certs costs ~50 ms CPU
        with httpx.Client(timeout=1, **{**plain, **client_args}) as http:  # one client, not one per poll
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()[-2000:]}")
                try:
                    if http.get(self.url + "/healthz").status_code == 200:
                        return self
                except httpx.HTTPError:
                    time.sleep(0.05)
        raise RuntimeError("server did not become healthy")

