"""The Kubernetes audit webhook: EventLists as kube-apiserver posts them, dedup on re-send, bad items."""

from __future__ import annotations

import json

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.receivers.conftest import bearer, notes, sealed, sealed_in


def fixtures(testdata) -> list[dict]:
    lines = (testdata / "logs" / "k8s_audit_falco_fixtures.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def event_list(items: list[dict], version: str = "audit.k8s.io/v1") -> dict:
    return {"kind": "EventList", "apiVersion": version, "metadata": {}, "items": items}


def test_webhook_over_http_seals_and_dedupes(live, testdata):
    """What kube-apiserver's webhook backend sends (batched EventList, bearer token from its kubeconfig)."""
    items = fixtures(testdata)
    token = live.token("k8s")
    headers = {**bearer(token), "Content-Type": "application/json", "User-Agent": "kube-apiserver-admission"}
    v1 = [i for i in items if i.get("apiVersion") == "audit.k8s.io/v1"]
    beta = [i for i in items if i.get("apiVersion") == "audit.k8s.io/v1beta1"]
    with httpx.Client(base_url=live.url, headers=headers, timeout=10) as client:
        first = client.post("/v1/k8s/audit", json=event_list(v1))
        assert first.status_code == 200 and first.json() == {"accepted": len(v1), "rejected": 0, "errors": []}
        assert client.post("/v1/k8s/audit", json=event_list(beta, "audit.k8s.io/v1beta1")).status_code == 200
        again = client.post("/v1/k8s/audit", json=event_list(v1))  # the apiserver retries after a timeout
        assert again.status_code == 200
    events = sealed_in(live.data_dir, "k8s")
    assert len(events) == len({(i["auditID"], i["stage"]) for i in v1 + beta}) >= len(v1)
    assert len({e["id"] for e in events}) == len(events)
    created = next(
        e for e in events if e["id"] == "k8s:55a81824-ab56-46c5-8b02-96336f5e78d7:ResponseComplete"
    )
    assert (created["action"], created["category"], created["outcome"]) == (
        "k8s.secrets.create",
        "config",
        "success",
    )
    assert created["actor"]["id"] == "minikube-user" and created["actor"]["ip"] == "192.168.64.1"
    assert created["source"]["kind"] == "kubernetes" and created["target"]["name"] == "default/example-secret"


def test_bad_items_are_refused_and_good_ones_sealed(rapi, testdata):
    client, tokens, app = rapi
    items = fixtures(testdata)[:3]
    broken = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "stage": "ResponseComplete", "verb": "get"}
    body = event_list([items[0], broken, "not an object", items[1]])
    response = client.post("/v1/k8s/audit", json=body, headers=bearer(tokens["ingest"]))
    assert response.status_code == 207
    answer = response.json()
    assert answer["accepted"] == 2 and answer["rejected"] == 2
    assert [e["position"] for e in answer["errors"]] == [1, 2]
    assert "auditID" in answer["errors"][0]["reason"]
    trail = app.state.service.trail
    assert len(sealed(trail)) == 2
    assert notes(trail)[-1]["attributes"]["receiver"] == "k8s_audit"
    all_bad = client.post("/v1/k8s/audit", json=event_list([broken]), headers=bearer(tokens["ingest"]))
    assert all_bad.status_code == 422


def test_unreadable_bodies(rapi):
    client, tokens, app = rapi
    auth = {**bearer(tokens["ingest"]), "content-type": "application/json"}
    for body in (b"{", b"\xff\xfe", b"[1, 2", b'"text"', b'{"kind": "EventList", "items": 3}'):
        response = client.post("/v1/k8s/audit", content=body, headers=auth)
        assert response.status_code == 400, body
        assert response.json()["error"]
    assert (
        client.post("/v1/k8s/audit", content=b"{}", headers={**auth, "content-type": "text/yaml"}).status_code
        == 415
    )
    assert client.post("/v1/k8s/audit", json=event_list([])).status_code == 401
    assert sealed(app.state.service.trail) == []


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    items=st.lists(
        st.dictionaries(
            st.sampled_from(
                [
                    "auditID",
                    "stage",
                    "verb",
                    "user",
                    "objectRef",
                    "responseStatus",
                    "stageTimestamp",
                    "sourceIPs",
                ]
            ),
            st.none()
            | st.integers()
            | st.text(max_size=10)
            | st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
        ),
        max_size=5,
    )
)
def test_random_items_never_5xx(rapi, items):
    client, tokens, _ = rapi
    response = client.post("/v1/k8s/audit", json=event_list(items), headers=bearer(tokens["ingest"]))
    assert response.status_code in (200, 207, 422)
    assert response.json().get("accepted", 0) + response.json().get("rejected", 0) == len(items)
