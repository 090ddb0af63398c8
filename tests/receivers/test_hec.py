"""Splunk HEC: the splunk_handler logging client against a real server, /raw, codes, hostile bodies."""

from __future__ import annotations

import json
import logging

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from splunk_handler import SplunkHandler

from tests.receivers.conftest import bearer, sealed, sealed_in, wait_for


def splunk(token: str) -> dict[str, str]:
    return {"Authorization": f"Splunk {token}"}


def test_splunk_handler_to_a_real_server(live):
    """splunk_handler batches records as concatenated JSON envelopes to /services/collector/event."""
    host, port = live.url.removeprefix("http://").split(":")
    handler = SplunkHandler(
        host=host,
        port=int(port),
        token=live.token("hec-client"),
        index="main",
        protocol="http",
        verify=False,
        flush_interval=0.2,
        hostname="app-3",
        source="billing",
        sourcetype="_json",
        retry_count=1,
        timeout=10,
    )
    logger = logging.getLogger("hec.billing")
    logger.propagate = False
    logger.addHandler(handler)
    for n in range(5):
        logger.warning("invoice %d exported", n)
    handler.force_flush()
    handler.close()
    logger.removeHandler(handler)
    events = wait_for(lambda: (lambda e: e if len(e) == 5 else None)(sealed_in(live.data_dir, "hec-client")))
    assert sorted(e["attributes"]["message"] for e in events) == [f"invoice {n} exported" for n in range(5)]
    event = events[0]
    assert event["source"] == {"component": "billing", "kind": "app", "format": "splunk_hec", "host": "app-3"}
    assert (
        event["attributes"]["splunk.index"] == "main" and event["attributes"]["splunk.sourcetype"] == "_json"
    )
    assert (event["category"], event["action"], event["outcome"]) == ("system", "log.message", "unknown")
    assert "time_missing" not in event["attributes"] and event["time"][:4] >= "2025"


def test_envelopes_and_codes(rapi):
    client, tokens, app = rapi
    body = (
        b'{"time": 1700000000.5, "host": "h1", "source": "app", "event": "hello"}'
        b'{"event": ""}\n'
        b'{"time": "1700000001", "event": {"message": "login", "event": {"action": "user.login", '
        b'"outcome": "failure"}, "user": {"name": "bob"}}, "fields": {"env": "prod"}}'
        b'{"host": "h2"}'
        b'{"event": {"time": "2026-01-01T00:00:00Z", "category": "admin", "action": "user.delete", '
        b'"outcome": "success", "actor": {"id": "root"}, "source": {"component": "iam", "kind": "app"}}}'
    )
    response = client.post("/services/collector/event", content=body, headers=splunk(tokens["ingest"]))
    assert response.status_code == 400
    answer = response.json()
    assert (answer["code"], answer["invalid-event-number"], answer["accepted"], answer["rejected"]) == (
        13,
        1,
        3,
        2,
    )
    hello, login, native = sealed(app.state.service.trail)
    assert hello["time"] == "2023-11-14T22:13:20.500000Z" and hello["source"]["host"] == "h1"
    assert (login["action"], login["category"], login["outcome"]) == (
        "user.login",
        "authentication",
        "failure",
    )
    assert login["actor"]["id"] == "bob" and login["attributes"]["splunk.fields"] == {"env": "prod"}
    assert login["time"] == "2023-11-14T22:13:21.000000Z"
    assert native["action"] == "user.delete" and native["source"]["format"] == "splunk_hec"
    ok = client.post(
        "/services/collector", content=b'{"event": "x"} {"event": "y"}', headers=bearer(tokens["ingest"])
    )
    assert ok.status_code == 200 and ok.json() == {"text": "Success", "code": 0}


def test_raw_lines_with_a_sourcetype_format(rapi):
    client, tokens, app = rapi
    lines = (
        b"Mar  1 10:00:00 bastion sshd[42]: Failed password for root from 203.0.113.8 port 22 ssh2\n"
        b"\n"
        b"not a syslog line\n"
        b"Mar  1 10:00:05 bastion sshd[42]: Accepted publickey for deploy from 203.0.113.9 port 22 ssh2\n"
    )
    response = client.post(
        "/services/collector/raw?sourcetype=linux_secure&host=bastion",
        content=lines,
        headers=splunk(tokens["ingest"]),
    )
    assert response.status_code == 400 and response.json()["invalid-event-number"] == 1
    failed, accepted = sealed(app.state.service.trail)
    assert (failed["action"], failed["outcome"], failed["actor"]["id"]) == ("user.login", "failure", "root")
    assert accepted["outcome"] == "success" and accepted["attributes"]["splunk.sourcetype"] == "linux_secure"
    plain = client.post(
        "/services/collector/raw/1.0?source=cron", content=b"job done\n", headers=splunk(tokens["ingest"])
    )
    assert plain.json()["code"] == 0
    assert sealed(app.state.service.trail)[-1]["attributes"] == {
        "message": "job done",
        "splunk.source": "cron",
        "time_missing": True,
    }


def test_hostile_envelopes(rapi):
    client, tokens, app = rapi
    auth = splunk(tokens["ingest"])
    cases = {
        b"": 5,
        b"   \n ": 5,
        b'{"event": "ok"}{"event": bad}{"event": "never read"}': 6,
        b'{"event": "ok"}[1, 2]': 6,
        b'{"event": "ok"}{"event": "\xff\xfe"}': 6,
        b'{"event": "ok"}{"fields": {"a": {"b": 1}}, "event": "x"}': 15,
        b'{"event": "ok"}{"host": 7, "event": "x"}': 6,
        b'{"event": "ok"}{"time": "soon", "event": "x"}': 6,
        b'{"event": "ok"}' + b"[" * 5000: 6,
    }
    for body, code in cases.items():
        response = client.post("/services/collector/event", content=body, headers=auth)
        assert response.status_code < 500 and response.json()["code"] == code, body[:40]
    assert (
        len(sealed(app.state.service.trail)) == len(cases) - 2
    )  # every good first event, before the bad one
    assert client.post("/services/collector/event", content=b'{"event":"x"}').json()["code"] == 2
    assert (
        client.post(
            "/services/collector/event", content=b'{"event":"x"}', headers={"Authorization": "Digest abc"}
        ).json()["code"]
        == 3
    )
    denied = client.post("/services/collector/event", content=b'{"event":"x"}', headers=splunk("nope"))
    assert denied.status_code == 403 and denied.json()["code"] == 4


def test_health_and_overload(rapi):
    client, tokens, app = rapi
    assert client.get("/services/collector/health").json() == {"text": "HEC is healthy", "code": 17}
    sealer = app.state.service.trail.sealer
    sealer.max_queue_events = 0
    assert client.get("/services/collector/health").status_code == 503
    busy = client.post(
        "/services/collector/event", content=b'{"event":"x"}', headers=splunk(tokens["ingest"])
    )
    assert busy.status_code == 503 and busy.json()["code"] == 9 and busy.headers["retry-after"] == "1"


envelopes = st.dictionaries(
    st.sampled_from(["event", "time", "host", "source", "sourcetype", "index", "fields"]),
    st.none()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=2),
    max_size=5,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(envelopes, max_size=5), junk=st.binary(max_size=20))
def test_random_envelopes_never_5xx(rapi, docs, junk):
    client, tokens, _ = rapi
    body = b"".join(json.dumps(d).encode() for d in docs) + junk
    response = client.post("/services/collector/event", content=body, headers=splunk(tokens["ingest"]))
    assert response.status_code in (200, 400)
    assert isinstance(response.json()["code"], int)
