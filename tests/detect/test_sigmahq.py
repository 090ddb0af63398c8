"""Every SigmaHQ sample rule loads and fires on the events it describes, and only on those."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.detect.conftest import SIGMA_DIR, cloudtrail, event, k8s, okta, seal, web
from trailseal.detect import Engine
from trailseal.detect.matchers import RuleCompileError

PLACEHOLDERS = {"Legitimate_Countries": ["DE", "FR"], "Legitimate_IP_Ranges": ["10.0.0.0/8", "192.0.2.0/24"]}


def sshd(message: str) -> dict:
    return seal(
        {
            "category": "system",
            "action": "syslog.message",
            "outcome": "unknown",
            "actor": {"id": "sshd", "type": "system"},
            "source": {"component": "sshd", "kind": "infra", "format": "auth_log", "host": "bastion"},
            "attributes": {"message": message, "process.name": "sshd"},
        }
    )


def db_error(message: str) -> dict:
    return seal(
        {
            "category": "data_access",
            "action": "db.query",
            "outcome": "error",
            "reason": message,
            "actor": {"id": "app"},
            "source": {"component": "orders-db", "kind": "database", "format": "postgresql"},
        }
    )


def github(action: str) -> dict:
    return seal(
        {
            "category": "config",
            "action": "github." + action.replace("_", "-"),
            "outcome": "success",
            "actor": {"id": "octocat"},
            "source": {"component": "github", "kind": "app", "format": "github"},
            "attributes": {"action": action},
        }
    )


def login_console(result: str, **extra) -> dict:
    return cloudtrail("ConsoleLogin", responseElements={"ConsoleLogin": result}, **extra)


CASES: dict[str, tuple] = {
    "rules-placeholder/cloud/aws/cloudtrail/aws_cloudtrail_console_login_success_from_susp_locations.yml": (
        lambda: [login_console("Success", src_country="KP", sourceIPAddress="203.0.113.5")],
        lambda: [
            login_console("Success", src_country="DE", sourceIPAddress="203.0.113.5"),
            login_console("Success", src_country="KP", sourceIPAddress="10.1.2.3"),
            login_console("Failure", src_country="KP", sourceIPAddress="203.0.113.5"),
        ],
    ),
    "rules/application/github/audit/github_disable_high_risk_configuration.yml": (
        lambda: [github("org.disable_two_factor_requirement"), github("repo.advanced_security_disabled")],
        lambda: [github("org.enable_two_factor_requirement"), github("repo.create")],
    ),
    "rules/application/kubernetes/audit/kubernetes_audit_events_deleted.yml": (
        lambda: [k8s("delete", "events")],
        lambda: [k8s("list", "events"), k8s("delete", "pods")],
    ),
    "rules/application/kubernetes/audit/kubernetes_audit_exec_into_container.yml": (
        lambda: [k8s("create", "pods", "exec", code=101)],
        lambda: [k8s("create", "pods", "attach", code=101), k8s("create", "pods")],
    ),
    "rules/application/kubernetes/audit/kubernetes_audit_potential_enumeration_activity.yml": (
        lambda: [
            k8s(
                "create",
                "pods",
                "exec",
                extra_attributes={"responseStatus": {"code": "ALLOW"}},
                uri="/api/v1/namespaces/default/pods/p/exec?command=%2Fbin%2Fsh",
            ),
            k8s(
                "list",
                "secrets",
                agent="trufflehog/3.0",
                extra_attributes={"responseStatus": {"code": "ALLOW"}},
            ),
        ],
        lambda: [
            k8s("create", "pods", "exec", uri="/api/v1/namespaces/default/pods/p/exec?command=%2Fbin%2Fsh"),
            k8s("list", "secrets", extra_attributes={"responseStatus": {"code": "ALLOW"}}),
        ],
    ),
    "rules/application/kubernetes/audit/kubernetes_audit_privileged_pod_creation.yml": (
        lambda: [k8s("create", "pods", extra_attributes={"capabilities": "SYS_ADMIN"})],
        lambda: [
            k8s("create", "pods"),
            k8s("update", "pods", extra_attributes={"capabilities": "NET_ADMIN"}),
        ],
    ),
    "rules/application/kubernetes/audit/kubernetes_audit_rbac_permisions_listing.yml": (
        lambda: [k8s("create", "selfsubjectrulesreviews", api_group="authorization.k8s.io")],
        lambda: [
            k8s("create", "selfsubjectrulesreviews"),
            k8s("create", "pods", api_group="authorization.k8s.io"),
        ],
    ),
    "rules/application/kubernetes/audit/kubernetes_audit_rolebinding_modification.yml": (
        lambda: [
            k8s("create", "clusterrolebindings", api_group="rbac.authorization.k8s.io"),
            k8s("patch", "rolebindings", api_group="rbac.authorization.k8s.io"),
        ],
        lambda: [
            k8s("get", "rolebindings", api_group="rbac.authorization.k8s.io"),
            k8s("create", "clusterroles", api_group="rbac.authorization.k8s.io"),
        ],
    ),
    "rules/application/kubernetes/audit/kubernetes_audit_secrets_enumeration.yml": (
        lambda: [k8s("list", "secrets")],
        lambda: [k8s("get", "secrets"), k8s("list", "configmaps")],
    ),
    "rules/application/kubernetes/audit/kubernetes_audit_unauthorized_unauthenticated_actions.yml": (
        lambda: [k8s("get", "secrets", code=403), k8s("list", "pods", code=401)],
        lambda: [k8s("get", "secrets", code=200), k8s("get", "pods", code=404)],
    ),
    "rules/application/sql/app_sqlinjection_errors.yml": (
        lambda: [
            db_error("ERROR: You have an error in your SQL syntax near 'x'"),
            db_error('near "FROM": syntax error'),
        ],
        lambda: [
            db_error("ERROR: relation orders does not exist"),
            event(reason="You have an error in your SQL syntax"),
        ],  # not a database source
    ),
    "rules/cloud/aws/cloudtrail/aws_cloudtrail_console_login_failed_authentication.yml": (
        lambda: [cloudtrail("ConsoleLogin", outcome="failure", errorMessage="Failed authentication")],
        lambda: [
            cloudtrail("ConsoleLogin", outcome="failure", errorMessage="No MFA"),
            cloudtrail("GetUser", errorMessage="Failed authentication"),
        ],
    ),
    "rules/cloud/aws/cloudtrail/aws_cloudtrail_console_login_success_without_mfa.yml": (
        lambda: [login_console("Success", additionalEventData={"MFAUsed": "No"})],
        lambda: [
            login_console("Success", additionalEventData={"MFAUsed": "Yes"}),
            login_console("Failure", additionalEventData={"MFAUsed": "No"}),
        ],
    ),
    "rules/cloud/aws/cloudtrail/aws_cloudtrail_disable_logging.yml": (
        lambda: [
            cloudtrail("StopLogging", "cloudtrail.amazonaws.com"),
            cloudtrail("DeleteTrail", "cloudtrail.amazonaws.com"),
        ],
        lambda: [
            cloudtrail("StartLogging", "cloudtrail.amazonaws.com"),
            cloudtrail("StopLogging", "s3.amazonaws.com"),
        ],
    ),
    "rules/cloud/aws/cloudtrail/aws_cloudtrail_imds_malicious_usage.yml": (
        lambda: [
            cloudtrail(
                "GetSecretValue",
                "secretsmanager.amazonaws.com",
                sourceIPAddress="198.51.100.4",
                userIdentity={
                    "type": "AssumedRole",
                    "arn": "arn:aws:sts::111122223333:assumed-role/aws:ec2-instance/i-0abc",
                },
            )
        ],
        lambda: [
            cloudtrail(
                "GetSecretValue",
                "secretsmanager.amazonaws.com",
                sourceIPAddress="AWS Internal",
                userIdentity={
                    "type": "AssumedRole",
                    "arn": "arn:aws:sts::111122223333:assumed-role/aws:ec2-instance/i-0abc",
                },
            ),
            cloudtrail(
                "GetSecretValue",
                "secretsmanager.amazonaws.com",
                userIdentity={
                    "type": "AssumedRole",
                    "arn": "arn:aws:sts::111122223333:assumed-role/Admin/alice",
                },
            ),
        ],
    ),
    "rules/cloud/aws/cloudtrail/aws_enum_buckets.yml": (
        lambda: [cloudtrail("ListBuckets", "s3.amazonaws.com")],
        lambda: [
            cloudtrail("ListBuckets", "s3.amazonaws.com", userIdentity={"type": "AssumedRole", "arn": "x"}),
            cloudtrail("ListObjects", "s3.amazonaws.com"),
        ],
    ),
    "rules/cloud/aws/cloudtrail/aws_root_account_usage.yml": (
        lambda: [
            cloudtrail(
                "CreateUser",
                "iam.amazonaws.com",
                userIdentity={"type": "Root", "arn": "arn:aws:iam::111122223333:root"},
            )
        ],
        lambda: [
            cloudtrail("CreateUser", "iam.amazonaws.com"),
            cloudtrail(
                "SharedSnapshotCopyInitiated",
                "ec2.amazonaws.com",
                eventType="AwsServiceEvent",
                userIdentity={"type": "Root", "arn": "arn:aws:iam::111122223333:root"},
            ),
        ],
    ),
    "rules/identity/okta/okta_admin_role_assigned_to_user_or_group.yml": (
        lambda: [okta("user.account.privilege.grant"), okta("group.privilege.grant")],
        lambda: [okta("user.account.privilege.revoke")],
    ),
    "rules/identity/okta/okta_mfa_reset_or_deactivated.yml": (
        lambda: [okta("user.mfa.factor.deactivate"), okta("user.mfa.factor.reset_all")],
        lambda: [okta("user.mfa.factor.activate")],
    ),
    "rules/identity/okta/okta_unauthorized_access_to_app.yml": (
        lambda: [okta("app.generic.unauth_app_access_attempt", "User attempted unauthorized access to app")],
        lambda: [okta("app.generic.unauth_app_access_attempt", "User accessed app")],
    ),
    "rules/identity/okta/okta_user_account_locked_out.yml": (
        lambda: [okta("user.account.lock", "Max sign in attempts exceeded")],
        lambda: [okta("user.account.lock", "Max sign in attempts exceeded soon")],
    ),
    "rules/identity/okta/okta_user_session_start_via_anonymised_proxy.yml": (
        lambda: [
            okta("user.session.start", securityContext={"isProxy": True}),
            okta("user.session.start", securityContext={"isProxy": "true"}),
        ],
        lambda: [
            okta("user.session.start", securityContext={"isProxy": False}),
            okta("user.session.end", securityContext={"isProxy": True}),
        ],
    ),
    "rules/linux/builtin/sshd/lnx_sshd_susp_ssh.yml": (
        lambda: [sshd("Corrupted MAC on input."), sshd("error in libcrypto: bad decrypt")],
        lambda: [sshd("Accepted publickey for alice"), event(reason="Corrupted MAC on input")],
    ),
    "rules/web/proxy_generic/proxy_raw_paste_service_access.yml": (
        lambda: [
            web("https://www.pastebin.com/raw/abc123", kind="gateway", component="squid"),
            web("https://x.ghostbin.co/paste/q1w2/raw/", component="squid"),
        ],
        lambda: [
            web("https://pastebin.com/abc123", component="squid"),
            web("https://x.ghostbin.co/paste/raw", component="squid"),
        ],
    ),
    "rules/web/proxy_generic/proxy_ua_empty.yml": (
        lambda: [web("/", agent="")],
        lambda: [web("/", agent="curl/8.0"), web("/", agent=None)],
    ),
    "rules/web/proxy_generic/proxy_ua_hacktool.yml": (
        lambda: [
            web("/", agent="sqlmap/1.7#stable"),
            web("/", agent="Mozilla/5.0 (compatible; DirBuster 1.0)"),
        ],
        lambda: [web("/", agent="Mozilla/5.0 (Windows NT 10.0) Chrome/120.0")],
    ),
    "rules/web/proxy_generic/proxy_webdav_external_execution.yml": (
        lambda: [
            web(
                "/share/payload.exe",
                agent="Microsoft-WebDAV-MiniRedir/10.0.19045",
                attributes={"destination.ip": "203.0.113.80"},
            )
        ],
        lambda: [
            web(
                "/share/payload.exe",
                agent="Microsoft-WebDAV-MiniRedir/10.0.19045",
                attributes={"destination.ip": "10.1.1.5"},
            ),
            web(
                "/share/report.pdf",
                agent="Microsoft-WebDAV-MiniRedir/10.0.19045",
                attributes={"destination.ip": "203.0.113.80"},
            ),
            web(
                "/share/payload.exe",
                method="PROPFIND",
                agent="Microsoft-WebDAV-MiniRedir/10.0",
                attributes={"destination.ip": "203.0.113.80"},
            ),
        ],
    ),
    "rules/web/webserver_generic/web_java_payload_in_access_logs.yml": (
        lambda: [web("/index.action?x=%24%7B%28%23a%3D%40ognl"), web("/a?cmd=getRuntime().exec('id')")],
        lambda: [web("/index.action?x=hello")],
    ),
    "rules/web/webserver_generic/web_jndi_exploit.yml": (
        lambda: [web("/x/Basic/Command/Base64/aWQ="), web("/TomcatBypass/Dnslog/a.example")],
        lambda: [web("/Basic/Other/"), web("/docs/Deserialization/")],
    ),
    "rules/web/webserver_generic/web_path_traversal_exploitation_attempt.yml": (
        lambda: [
            web("/download.php?file=../../../etc/passwd"),
            web("/download.php?file=..%252f..%252f..%252fetc%252fshadow"),
        ],
        lambda: [web("/../../../etc/passwd"), web("/download.php?file=../etc/passwd")],
    ),
    "rules/web/webserver_generic/web_source_code_enumeration.yml": (
        lambda: [web("/.git/config", status=404), web("/app/.GIT/HEAD")],
        lambda: [web("/gitlab/config"), web("/.github/workflows")],
    ),
    "rules/web/webserver_generic/web_sql_injection_in_access_logs.yml": (
        lambda: [web("/items?id=1 UNION SELECT password FROM users"), web("/q?x=1%27%20or%201=1#")],
        lambda: [
            web("/items?id=1 UNION SELECT password FROM users", status=404),
            web("/items?id=1 UNION SELECT password FROM users", method="POST"),
            web("/items?id=42"),
        ],
    ),
    "rules/web/webserver_generic/web_ssti_in_access_logs.yml": (
        lambda: [web("/greet?name={{7*7}}"), web("/x?t=freemarker.template.utility.Execute")],
        lambda: [web("/greet?name={{7*7}}", status=404), web("/greet?name=bob")],
    ),
    "rules/web/webserver_generic/web_susp_useragents.yml": (
        lambda: [
            web("/", agent="Mozilla/5.0 (compatible; Nmap Scripting Engine)"),
            web("/", agent="gobuster/3.6"),
        ],
        lambda: [web("/", agent="nmap-like/1.0"), web("/", agent="Mozilla/5.0 Firefox/126.0")],
    ),
    "rules/web/webserver_generic/web_xss_in_access_logs.yml": (
        lambda: [
            web("/search?q=<script>alert(1)</script>&x=document.cookie"),
            web('/p?a=" onload="alert(1)'),
        ],
        lambda: [web("/search?q=document.cookie", status=404), web("/search?q=cookies")],
    ),
}


def all_rule_paths() -> list[str]:
    return sorted(str(p.relative_to(SIGMA_DIR)) for p in SIGMA_DIR.glob("rules*/**/*.yml"))


def test_sample_is_complete_and_every_rule_has_a_case(sigma_dir: Path):
    paths = all_rule_paths()
    assert len(paths) == 35
    assert sorted(CASES) == paths


@pytest.mark.parametrize("relative", sorted(CASES))
def test_rule_matches_and_near_misses(sigma_dir: Path, relative: str):
    engine = Engine.from_paths([sigma_dir / relative], placeholders=PLACEHOLDERS)
    (rule,) = engine.rules
    assert rule.author, "DRL 1.1: alerts must carry the rule's author"
    build_matches, build_misses = CASES[relative]
    for item in build_matches():
        alerts = engine.process(item)
        assert [a.rule_id for a in alerts] == [rule.id], f"should match: {item}"
        assert alerts[0].author == rule.author
        assert alerts[0].events == [(item["log"], item["index"])]
    for item in build_misses():
        assert engine.process(item) == [], f"near miss matched: {item}"


def test_placeholder_rule_needs_its_placeholders(sigma_dir: Path):
    path = (
        sigma_dir
        / "rules-placeholder/cloud/aws/cloudtrail/aws_cloudtrail_console_login_success_from_susp_locations.yml"
    )
    with pytest.raises(RuleCompileError, match="Legitimate_Countries"):
        Engine.from_paths([path])


def test_whole_sample_loads_as_one_engine(sigma_dir: Path):
    engine = Engine.from_paths([sigma_dir], placeholders=PLACEHOLDERS)
    assert len(engine.rules) == 35
    assert {r.author for r in engine.rules} and all(r.author for r in engine.rules)
