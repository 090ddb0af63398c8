"""Real log samples, normalized by trailseal's formats, fire the rules written for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.detect.conftest import LOGS_DIR, SIGMA_DIR, seal
from trailseal.detect import Engine
from trailseal.formats import cloudtrail, k8s_audit

K8S_FIXTURES = LOGS_DIR / "k8s_audit_falco_fixtures.jsonl"


def k8s_events() -> list[dict]:
    if not K8S_FIXTURES.is_file():
        pytest.fail(f"missing {K8S_FIXTURES}")
    lines = K8S_FIXTURES.read_bytes().splitlines()
    records = [r for line in lines for r in k8s_audit.parse(line, component="kube-apiserver")]
    assert len(records) == 14
    return [seal(r) for r in records]


def titles_by_line(engine: Engine, events: list[dict]) -> list[set[str]]:
    return [{a.title for a in engine.process(e)} for e in events]


def test_k8s_fixtures_fire_exec_secrets_and_anonymous_rules():
    fired = titles_by_line(Engine.builtin(), k8s_events())
    exec_rule, secret_rule = "Kubernetes exec or attach into a pod", "Kubernetes secret accessed by a person"
    anon_rule = "Anonymous access succeeded"
    assert [i for i, t in enumerate(fired) if exec_rule in t] == [6, 7]  # exec_pod, attach_pod
    assert [i for i, t in enumerate(fired) if secret_rule in t] == [0, 1, 2]  # not the controller's token
    assert [i for i, t in enumerate(fired) if anon_rule in t] == [4]  # system:anonymous creates a namespace
    assert not any("Kubernetes binding to cluster-admin" in t for t in fired)  # binds system:basic-user


def test_k8s_fixtures_fire_sigmahq_kubernetes_rules():
    engine = Engine.from_paths([SIGMA_DIR / "rules/application/kubernetes"])
    fired = titles_by_line(engine, k8s_events())
    by_rule: dict[str, list[int]] = {}
    for i, titles in enumerate(fired):
        for title in titles:
            by_rule.setdefault(title, []).append(i)
    exec_rules = [t for t in by_rule if "Command Execution" in t]
    assert exec_rules and all(by_rule[t] == [6] for t in exec_rules)
    binding_rules = [t for t in by_rule if "RoleBinding" in t or "Rolebinding" in t]
    assert binding_rules and all(by_rule[t] == [8] for t in binding_rules)


def test_cloudtrail_sample_fires_sigmahq_aws_rules():
    raw = (LOGS_DIR / "cloudtrail_records_awsdocs.json").read_bytes()
    events = [seal(r) for r in cloudtrail.parse(raw)]
    engine = Engine.from_paths([SIGMA_DIR / "rules/cloud/aws/cloudtrail"])
    fired = {}
    for i, titles in enumerate(titles_by_line(engine, events)):
        for title in titles:
            fired.setdefault(title, []).append(events[i]["action"])
    assert fired["AWS Successful Console Login Without MFA"] == ["aws.signin.console_login"] * 2
    assert fired["AWS CloudTrail Important Change"] == ["aws.cloudtrail.update_trail"]
    assert fired["AWS ConsoleLogin Failed Authentication"] == ["aws.signin.console_login"] * 2
    assert len(fired["AWS Root Credentials"]) == 4
    assert set(fired) <= {
        "AWS Successful Console Login Without MFA",
        "AWS CloudTrail Important Change",
        "AWS ConsoleLogin Failed Authentication",
        "AWS Root Credentials",
    }


def test_sample_paths_exist():
    assert Path(SIGMA_DIR).is_dir() and K8S_FIXTURES.is_file()
