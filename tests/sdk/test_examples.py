"""The example apps, each run as its own process (uvicorn, flask run) against a real trailseal server:
what they seal is what an auditor would need."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.api.server import Server, free_port
from tests.conftest import REPO
from tests.sdk.conftest import sealed

EXAMPLES = {
    "fastapi": (["-m", "uvicorn", "examples.fastapi_app:app", "--host", "127.0.0.1"], "--port", "shop-api"),
    "flask": (["-m", "flask", "--app", "examples.flask_app", "run", "--host", "127.0.0.1"], "--port", "shop-web"),
}


def instrumented_lines(name: str) -> int:
    return sum("# audit" in line for line in (REPO / "examples" / f"{name}_app.py").read_text().splitlines())


def start_app(name: str, server: Server, spool) -> tuple[subprocess.Popen, str]:
    args, port_flag, _ = EXAMPLES[name]
    port = free_port()
    env = {**os.environ, "TRAILSEAL_URL": server.url, "TRAILSEAL_TOKEN": server.admin,
           "TRAILSEAL_SPOOL_DIR": str(spool)}
    proc = subprocess.Popen([sys.executable, *args, port_flag, str(port)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} example did not start")


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_app_seals_requests_logins_and_queries(name, data_dir, tmp_path):
    assert instrumented_lines(name) < 10
    server = Server(data_dir).start()
    app, url = start_app(name, server, tmp_path / "spool")
    try:
        with httpx.Client(base_url=url) as web:
            token = web.post("/login", json={"user": "alice", "password": "wonderland"}).json()["token"]
            assert web.post("/login", json={"user": "bob", "password": "guess"}).status_code == 401
            auth = {"Authorization": f"Bearer {token}"}
            statuses = [web.get(path, headers=auth).status_code for path in ("/orders/1", "/orders/2", "/orders/99")]
            assert statuses == [200, 403, 404]
            assert web.get("/orders/1").status_code == 401
        events = sealed(server, at_least=11)
    finally:
        app.terminate()
        app.wait(10)
        server.stop()
    source = EXAMPLES[name][2]
    assert {e["source"]["component"] for e in events} == {source}
    http = [e for e in events if e["action"] != "db.query"]
    assert [(e["action"], e["outcome"], e["actor"]["id"]) for e in http] == [
        ("user.login", "success", "alice"), ("user.login", "failure", "bob"),
        ("http.request", "success", "alice"), ("http.request", "failure", "alice"),
        ("http.request", "failure", "alice"), ("http.request", "failure", "anonymous")]
    assert {e["request"]["path"] for e in http[2:]} == {"/orders/{order_id}"}
    assert [e["request"]["status"] for e in http] == [200, 401, 200, 403, 404, 401]
    queries = [e for e in events if e["action"] == "db.query"]
    assert [q["attributes"]["operation"] for q in queries] == ["CREATE", "INSERT", "SELECT", "SELECT", "SELECT"]
    assert queries[0]["actor"] == {"id": source, "type": "service"}
    assert all(q["actor"]["id"] == "alice" and q["actor"]["ip"] == "127.0.0.1" for q in queries[2:])
    assert queries[2]["attributes"]["statement"] == "SELECT owner, total FROM orders WHERE id = ?"
    assert not any("healthz" in e["request"]["path"] for e in http)
