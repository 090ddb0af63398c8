"""A scripted stand-in for the ingest endpoint (uvicorn in a thread on 127.0.0.1), for the answers a real
server rarely gives: 429 with Retry-After, 413, per-record rejections."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import uvicorn

from tests.api.server import free_port


@dataclass
class Seen:
    """One request the stub received."""

    at: float
    headers: dict[str, str]
    lines: list[dict]


def accept_all(lines: list[dict]) -> tuple[int, dict, dict]:
    receipts = [{"position": i, "id": e["id"], "log": "default", "index": i} for i, e in enumerate(lines)]
    return 200, {}, {"accepted": len(lines), "rejected": 0, "receipts": receipts, "errors": []}


@dataclass
class Stub:
    """Answers each POST with ``answer(lines) -> (status, headers, body)``."""

    answer: Callable[[list[dict]], tuple[int, dict, dict]] = accept_all
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.port = free_port()
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="error", lifespan="off",
                                interface="asgi3")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Stub:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)

    async def app(self, scope, receive, send) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        self.seen.append(Seen(time.monotonic(), headers, lines))
        status, extra, payload = self.answer(lines)
        data = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                *((k.encode(), v.encode()) for k, v in extra.items())]})
        await send({"type": "http.response.body", "body": data})
