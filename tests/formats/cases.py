"""The golden cases: every file of ../shared/testdata/logs, the format that reads it and its context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trailseal import formats
from trailseal.formats import FormatError

TESTDATA = Path(__file__).resolve().parents[2].parent / "shared" / "testdata"
LOGS = TESTDATA / "logs"
GOLDEN = Path(__file__).resolve().parent / "golden"
NOT_LOGS = {"README.md"}

# file -> (format, ctx). Years for formats without one are the years the samples were written.
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "apache_access.log": ("access_log", {}),
    "nginx_access_combined.log": ("access_log", {}),
    "linux_auth_sshd_sudo.log": ("auth_log", {"year": 2016}),
    "syslog_bsd_darwin_multiline.log": ("syslog", {"year": 2016}),
    "syslog_rfc3164_examples.log": ("syslog", {"year": 2003}),
    "syslog_rfc5424_examples.log": ("syslog", {}),
    "syslog_rfc5424_octet_counted.bin": ("syslog", {}),
    "pgaudit_postgresql_csvlog.csv": ("pgaudit", {}),
    "cloudtrail_records_awsdocs.json": ("cloudtrail", {}),
    "cloudtrail_digest_awsdocs.json": ("cloudtrail", {}),
    "k8s_audit_falco_fixtures.jsonl": ("k8s_audit", {}),
    "otlp_logs_request_example.json": ("otlp", {}),
}


def records(name: str) -> list[bytes]:
    """The records of a testdata file, split the way its format splits files."""
    fmt, _ = CASES[name]
    return formats.get(fmt).split((LOGS / name).read_bytes())


def run_case(name: str) -> list[dict[str, Any]]:
    """One row per record ({"record", "events"} or {"record", "rejected"}), then a summary row."""
    fmt, ctx = CASES[name]
    module = formats.get(fmt)
    rows: list[dict[str, Any]] = []
    for number, record in enumerate(records(name), 1):
        try:
            if hasattr(module, "parse_batch"):
                events, rejected = module.parse_batch(record, **ctx)
            else:
                events, rejected = module.parse(record, **ctx), []
        except FormatError as exc:
            rows.append({"record": number, "rejected": exc.reason})
            continue
        row: dict[str, Any] = {"record": number, "events": events}
        if rejected:
            row["rejected_items"] = [list(item) for item in rejected]
        rows.append(row)
    rows.append({"summary": summary(rows)})
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {
        "records": len(rows),
        "events": sum(len(r.get("events", [])) for r in rows),
        "rejected_records": sum(1 for r in rows if "rejected" in r),
        "rejected_items": sum(len(r.get("rejected_items", [])) for r in rows),
    }
