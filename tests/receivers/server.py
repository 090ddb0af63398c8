"""A real trailseal server with the receiver routes, in a subprocess on a free loopback port."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.api.server import free_port
from trailseal.api.auth import TokenStore

REPO = Path(__file__).resolve().parents[2]


class ReceiverServer:
    """Start and stop the server; make ingest tokens scoped to one log each."""

    def __init__(self, data_dir: Path):
        self.data_dir, self.port = data_dir, free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, log: str | None = None, role: str = "ingest") -> str:
        store = TokenStore(self.data_dir)
        try:
            return store.create(role, logs=(log,) if log else ())[0]
        finally:
            store.close()

    def start(self, timeout: float = 20.0) -> ReceiverServer:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.receivers.serve",
                "--data",
                str(self.data_dir),
                "--port",
                str(self.port),
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("server did not become healthy")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
