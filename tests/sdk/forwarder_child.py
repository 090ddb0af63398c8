"""A process whose audited apps hand their requests to a forwarder subprocess.

    python -m tests.sdk.forwarder_child kill URL TOKEN LOG SPOOL_DIR COUNT
    python -m tests.sdk.forwarder_child fork URL TOKEN LOG SPOOL_DIR COUNT

``kill``: an ASGI app serves COUNT requests, waits until they are handed over, then SIGKILLs itself (the
forwarder must still deliver them). ``fork``: a WSGI app serves one request, the process forks, parent and
child each serve COUNT and close; each prints its forwarder's pid.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

from trailseal.sdk.asgi import TrailsealMiddleware as AsgiMiddleware
from trailseal.sdk.client import Client
from trailseal.sdk.wsgi import TrailsealMiddleware as WsgiMiddleware


async def asgi_ok(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def serve_asgi(app, count: int) -> None:
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    for i in range(count):
        await app({"type": "http", "method": "GET", "path": f"/kill/{i}", "root_path": "", "headers": [],
                   "client": ("10.1.1.1", 1)}, receive, send)
    await asyncio.sleep(0.3)  # past the hand-over interval: all of them are in the forwarder's pipe


def wsgi_ok(environ, start_response):
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


def serve_wsgi(app, prefix: str, count: int) -> None:
    for i in range(count):
        body = app({"REQUEST_METHOD": "GET", "PATH_INFO": f"/{prefix}/{i}", "REMOTE_ADDR": "10.1.1.2"},
                   lambda status, headers, exc_info=None: None)
        for _chunk in body:
            pass
        body.close()


def kill(client: Client, count: int) -> None:
    asyncio.run(serve_asgi(AsgiMiddleware(asgi_ok, client), count))
    print("forwarded", client.stats.forwarded, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def fork(client: Client, count: int) -> None:
    app = WsgiMiddleware(wsgi_ok, client)
    serve_wsgi(app, "before", 1)
    assert client.flush(10)
    pid = os.fork()
    who = "child" if pid == 0 else "parent"
    serve_wsgi(app, who, count)
    time.sleep(0.1)
    print(who, client._forwarder.proc.pid, flush=True)
    ok = client.close(timeout=10)
    if pid == 0:
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    sys.exit(0 if ok and status == 0 else 1)


def main(mode: str, url: str, token: str, log: str, spool_dir: str, count: str) -> None:
    client = Client(url, token, log=log, source="tests", spool_dir=spool_dir, flush_interval=0.05)
    {"kill": kill, "fork": fork}[mode](client, int(count))


if __name__ == "__main__":
    main(*sys.argv[1:])
