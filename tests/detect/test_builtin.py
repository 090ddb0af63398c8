"""The built-in pack: every rule loads, fires on its scenario and stays quiet on the near miss."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.detect.conftest import event, k8s, seal
from trailseal.detect import Engine, offhours_placeholders
from trailseal.detect.engine import BUILTIN_DIR


def at(second: int, minute: int = 0, hour: int = 10, day: int = 2) -> str:
    return f"2026-03-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.000000Z"


def fired(engine: Engine, events: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in events:
        for alert in engine.process(item):
            counts[alert.title] = counts.get(alert.title, 0) + 1
    return counts


def failed(user: str, ip: str, second: int, minute: int = 0) -> dict:
    return event(outcome="failure", actor={"id": user, "ip": ip}, time=at(second, minute))


@pytest.fixture
def engine() -> Engine:
    return Engine.builtin()


def test_every_builtin_rule_is_valid_sigma_by_trailseal():
    docs = [d for p in sorted(BUILTIN_DIR.glob("*.yml")) for d in yaml.safe_load_all(p.read_text())]
    assert len(docs) >= 20
    assert all(d["author"] == "trailseal" for d in docs)
    assert len({d["id"] for d in docs}) == len(docs)
    assert Engine.builtin().rules


def test_brute_force_from_one_ip(engine: Engine):
    burst = [failed(f"user{i % 3}", "203.0.113.50", i) for i in range(10)]
    assert fired(engine, burst) == {"Brute force from one IP address": 1}


def test_brute_force_spread_beyond_window_is_quiet(engine: Engine):
    slow = [failed("bob", "203.0.113.51", 0, minute=i) for i in range(10)]  # one a minute, 5m window
    assert "Brute force against one account" not in fired(engine, slow)


def test_brute_force_against_one_account(engine: Engine):
    burst = [failed("carol", f"198.51.100.{i}", i) for i in range(12)]
    assert fired(engine, burst) == {"Brute force against one account": 1}


def test_password_spray(engine: Engine):
    spray = [failed(f"user{i}", "203.0.113.77", i) for i in range(10)]
    got = fired(engine, spray)
    assert got["Password spray from one IP address"] == 1
    same_user = [failed("dave", "203.0.113.78", i) for i in range(9)]
    assert "Password spray from one IP address" not in fired(engine, same_user)


def test_success_after_failures(engine: Engine):
    story = [failed("erin", f"198.51.100.{i}", i) for i in range(5)]
    story.append(event(actor={"id": "erin", "ip": "198.51.100.99"}, time=at(30)))
    assert fired(engine, story).get("Successful login after many failures") == 1
    few = [failed("frank", "198.51.100.1", i) for i in range(4)]
    few.append(event(actor={"id": "frank", "ip": "198.51.100.1"}, time=at(30)))
    assert "Successful login after many failures" not in fired(engine, few)


def test_success_before_failures_is_not_success_after(engine: Engine):
    story = [event(actor={"id": "gina", "ip": "198.51.100.1"}, time=at(0))]
    story += [failed("gina", "198.51.100.1", i + 1) for i in range(6)]
    assert "Successful login after many failures" not in fired(engine, story)


@pytest.mark.parametrize(
    ("action", "outcome", "expected"),
    [
        ("user.role.grant", "success", True),
        ("account.privilege.add", "success", True),
        ("k8s.clusterrolebindings.create", "success", True),
        ("user.role.grant", "failure", False),
        ("user.role.revoke", "success", False),
    ],
)
def test_privilege_grant(engine: Engine, action: str, outcome: str, expected: bool):
    got = fired(engine, [event(action=action, outcome=outcome, category="account")])
    assert ("Privilege or role granted" in got) is expected


def test_admin_outside_business_hours():
    engine = Engine.builtin()
    night = event(action="config.update", category="admin", time="2026-03-03T02:00:00Z")
    saturday = event(action="config.update", category="admin", time="2026-03-07T11:00:00Z")
    tuesday = event(action="config.update", category="admin", time="2026-03-03T11:00:00Z")
    by_system = event(
        action="config.update",
        category="admin",
        time="2026-03-03T02:00:00Z",
        actor={"id": "cron", "type": "system"},
    )
    title = "Administrative action outside business hours"
    assert [title in fired(engine, [e]) for e in (night, saturday, tuesday, by_system)] == [
        True,
        True,
        False,
        False,
    ]


def test_business_hours_and_time_zone_are_configurable():
    engine = Engine.builtin(placeholders=offhours_placeholders(6, 23), timezone="America/New_York")
    # 02:00 UTC on a Tuesday is 21:00 Monday in New York: inside 06-23 business hours.
    late = event(action="config.update", category="admin", time="2026-03-03T02:00:00Z")
    assert fired(engine, [late]) == {}
    early = event(action="config.update", category="admin", time="2026-03-03T10:30:00Z")  # 05:30 NY
    assert fired(engine, [early]) == {"Administrative action outside business hours": 1}


def test_mass_export(engine: Engine):
    exports = [
        event(action="report.export", category="data_access", actor={"id": "hank"}, time=at(i, i))
        for i in range(20)
    ]
    assert fired(engine, exports) == {"Mass data export by one actor": 1}
    reads = [
        event(action="report.read", category="data_access", actor={"id": "ivy"}, time=at(i, i))
        for i in range(25)
    ]
    assert fired(engine, reads) == {}


def test_anonymous_access(engine: Engine):
    anon = event(
        action="db.query",
        category="data_access",
        actor={"id": "-", "type": "anonymous"},
        request={"path": "/api/private/files", "status": 200},
    )
    denied = event(
        action="db.query",
        category="data_access",
        outcome="failure",
        actor={"id": "-", "type": "anonymous"},
        request={"path": "/api/private", "status": 401},
    )
    health = event(
        action="api.call",
        category="data_access",
        actor={"id": "-", "type": "anonymous"},
        request={"path": "/healthz", "status": 200},
    )
    web_visitor = event(
        action="http.request",
        category="data_access",
        actor={"id": "-", "type": "anonymous"},
        request={"path": "/index.html", "status": 200},
    )
    assert fired(engine, [anon]) == {"Anonymous access succeeded": 1}
    assert fired(engine, [denied, health, web_visitor]) == {}


def test_kubernetes_rules(engine: Engine):
    assert "Kubernetes secret accessed by a person" in fired(engine, [k8s("get", "secrets")])
    assert fired(engine, [k8s("get", "secrets", user="system:kube-controller-manager")]) == {}
    assert fired(engine, [k8s("create", "pods", "exec", code=101)]) == {
        "Kubernetes exec or attach into a pod": 1
    }
    binding = k8s(
        "create",
        "clusterrolebindings",
        extra_attributes={"requestObject": {"roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}}},
    )
    assert "Kubernetes binding to cluster-admin" in fired(engine, [binding])
    reader = k8s(
        "create",
        "clusterrolebindings",
        extra_attributes={"requestObject": {"roleRef": {"kind": "ClusterRole", "name": "view"}}},
    )
    assert "Kubernetes binding to cluster-admin" not in fired(engine, [reader])


def test_clock_skew(engine: Engine):
    skewed = event(time="2026-03-02T10:00:00Z", received="2026-03-02T10:06:00Z")
    fine = event(time="2026-03-02T10:00:00Z", received="2026-03-02T10:04:59Z")
    assert fired(engine, [skewed]) == {"Producer clock skew": 1}
    assert fired(engine, [fine]) == {}


def system_event(action: str, second: int, component: str = "ingest") -> dict:
    return seal(
        {
            "category": "system",
            "action": action,
            "outcome": "failure",
            "actor": {"id": "trailseal", "type": "system"},
            "source": {"component": component, "kind": "trailseal"},
            "time": at(second % 60, second // 60),
        }
    )


def test_ingestion_failing(engine: Engine):
    rejected = [system_event("trailseal.ingest.rejected", i) for i in range(50)]
    assert fired(engine, rejected) == {"Audit ingestion failing": 1}
    few = Engine.builtin()
    assert fired(few, rejected[:49]) == {}


def test_integrity_failed(engine: Engine):
    assert fired(engine, [system_event("trailseal.integrity.failed", 1)]) == {
        "Ledger integrity check failed": 1
    }
    spoofed = event(action="trailseal.integrity.failed", category="system")  # not from trailseal itself
    assert fired(engine, [spoofed]) == {}


def test_compliance_validation_failed(engine: Engine):
    assert fired(engine, [system_event("trailseal.validate.failed", 1)]) == {"Compliance validation check failed": 1}
    assert fired(engine, [system_event("trailseal.validate.passed", 2)]) == {}
    spoofed = event(action="trailseal.validate.failed", category="system")  # not from trailseal itself
    assert fired(engine, [spoofed]) == {}


def test_builtin_files_are_the_pack():
    names = {p.stem for p in Path(BUILTIN_DIR).glob("*.yml")}
    assert {
        "brute_force",
        "password_spray",
        "success_after_failures",
        "privilege_grant",
        "offhours_admin",
        "mass_export",
        "anonymous_access",
        "k8s_secret_access",
        "k8s_exec",
        "k8s_cluster_admin_binding",
        "clock_skew",
        "ingest_rejected",
        "integrity_failed",
    } <= names
