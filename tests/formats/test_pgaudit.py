from __future__ import annotations

import pytest

from trailseal.formats import FormatError, pgaudit

from .helpers import parse_one

CSV = (
    '2024-05-01 10:00:00.123 UTC,"ann","shop",4242,"192.0.2.8:51234",6631b1f0.1092,7,"SELECT",'
    '2024-05-01 09:59:00 UTC,3/14,0,LOG,00000,"AUDIT: {audit}",,,,,,,,,"psql"'
)


def csv_line(audit: str) -> str:
    return CSV.format(audit=audit.replace('"', '""'))


@pytest.mark.parametrize(
    ("audit", "action", "category"),
    [
        ("SESSION,1,1,READ,SELECT,,,select 1,<none>", "db.read.select", "data_access"),
        (
            "SESSION,1,1,WRITE,INSERT,TABLE,public.t,insert into t values (1),<none>",
            "db.write.insert",
            "data_change",
        ),
        ("SESSION,1,1,DDL,DROP TABLE,,,drop table t,<none>", "db.ddl.drop_table", "config"),
        ("SESSION,1,1,ROLE,CREATE ROLE,,,create role r,<none>", "db.role.create_role", "account"),
        ("SESSION,1,1,ROLE,GRANT,,,grant select on t to r,<none>", "db.role.grant", "authorization"),
        (
            "SESSION,1,1,FUNCTION,EXECUTE,FUNCTION,public.f,select f(),<none>",
            "db.function.execute",
            "data_change",
        ),
        ("SESSION,1,1,MISC,SET,,,set x = 1,<none>", "db.misc.set", "data_access"),
    ],
)
def test_class_and_command_decide_action_and_category(audit, action, category):
    event = parse_one("pgaudit", csv_line(audit))
    assert (event["action"], event["category"], event["outcome"]) == (action, category, "unknown")


def test_csvlog_entry_maps_actor_target_and_statement():
    event = parse_one(
        "pgaudit",
        csv_line('OBJECT,3,1,READ,SELECT,TABLE,public.account,"select a, b from account",<not logged>'),
    )
    assert event["time"] == "2024-05-01T10:00:00.123000Z"
    assert event["actor"] == {"id": "ann", "type": "user", "session": "6631b1f0.1092", "ip": "192.0.2.8"}
    assert event["target"] == {"type": "table", "name": "public.account"}
    attributes = event["attributes"]
    assert attributes["db.statement"] == "select a, b from account" and "db.parameters" not in attributes
    assert attributes["pgaudit.type"] == "OBJECT" and attributes["db.name"] == "shop"
    assert event["source"] == {"component": "postgresql", "kind": "database", "format": "pgaudit"}


def test_rows_field_of_newer_pgaudit_is_kept():
    event = parse_one("pgaudit", csv_line("SESSION,1,1,READ,SELECT,,,select 1,<none>,17"))
    assert event["attributes"]["pgaudit.rows"] == 17


def test_failed_password_is_a_failed_login():
    line = (
        '2024-05-01 10:00:00.123 UTC,"eve","shop",1,"192.0.2.9:1",6631b1f0.1,1,"authentication",'
        '2024-05-01 10:00:00 UTC,3/1,0,FATAL,28P01,"password authentication failed for user ""eve""",'
        ',,,,,,,,""'
    )
    event = parse_one("pgaudit", line)
    assert (event["category"], event["action"], event["outcome"]) == ("authentication", "db.login", "failure")
    assert event["reason"] == 'password authentication failed for user "eve"'


def test_stderr_form_with_a_custom_line_prefix():
    line = (
        "2024-05-01 10:00:00.5 UTC [77] ann@shop LOG:  AUDIT: SESSION,1,1,DDL,CREATE TABLE,TABLE,public.t,"
        '"create table t (\n\tid int)",<none>'
    )
    event = parse_one("pgaudit", line.replace(".5 UTC", ".500 UTC"), line_prefix="%m [%p] %q%u@%d ")
    assert event["action"] == "db.ddl.create_table" and event["actor"]["id"] == "ann"
    assert event["attributes"]["db.statement"] == "create table t (\nid int)"
    assert event["attributes"]["process.pid"] == 77


def test_stderr_auxiliary_lines_are_rejected_with_a_reason():
    with pytest.raises(FormatError, match="belongs to the entry before it"):
        pgaudit.parse(b"2024-05-01 10:00:00.500 UTC [77] STATEMENT:  select 1")


def test_local_zone_abbreviation_uses_default_tz():
    line = CSV.format(audit="SESSION,1,1,READ,SELECT,,,select 1,<none>").replace(" UTC,", " CEST,", 1)
    event = parse_one("pgaudit", line, default_tz="Europe/Berlin")
    assert event["time"] == "2024-05-01T08:00:00.123000Z"


def test_csv_records_keep_quoted_newlines_together():
    data = b'a,"x\ny",b\nc,d\n\ne,"""q""\n"\n'
    assert pgaudit.csv_records(data) == [b'a,"x\ny",b', b"c,d", b'e,"""q""\n"']


@pytest.mark.parametrize(
    "line",
    [
        "2024-05-01 10:00:00.123 UTC,too,few",
        csv_line("SESSION,1,1,NOPE,SELECT,,,x,<none>"),
        csv_line("SESSION,1,1,READ"),
        "not a postgres line at all",
    ],
)
def test_malformed_entries_are_rejected(line):
    with pytest.raises(FormatError):
        pgaudit.parse(line.encode())


def test_entries_of_one_second_keep_their_own_fraction_and_zone():
    times = [
        parse_one(
            "pgaudit", CSV.format(audit="SESSION,1,1,READ,SELECT,,,select 1,<none>").replace(old, new, 1)
        )["time"]
        for old, new in (
            ("10:00:00.123 UTC,", "10:00:00.123 UTC,"),
            ("10:00:00.123 UTC,", "10:00:00.5 UTC,"),
            ("10:00:00.123 UTC,", "10:00:00 UTC,"),
            ("10:00:00.123 UTC,", "10:00:00.123 +02,"),
        )
    ]
    assert times == [
        "2024-05-01T10:00:00.123000Z",
        "2024-05-01T10:00:00.500000Z",
        "2024-05-01T10:00:00.000000Z",
        "2024-05-01T08:00:00.123000Z",
    ]


def test_a_default_zone_with_a_sub_second_offset_is_applied_exactly():
    from datetime import timedelta, timezone

    line = CSV.format(audit="SESSION,1,1,READ,SELECT,,,select 1,<none>").replace(" UTC,", " CEST,", 1)
    odd = timezone(timedelta(hours=1, microseconds=250))
    assert parse_one("pgaudit", line, default_tz=odd)["time"] == "2024-05-01T09:00:00.122750Z"


@pytest.mark.parametrize(
    ("audit", "reason"),
    [
        ("SESSION,1,1,READ,SELECT,,,select\r1,<none>", "malformed pgAudit entry: new-line character"),
        ("SESSION,1,1,READ,SELECT,,,select 1,<none>,1,2", "pgAudit entry has 11 fields"),
        (f"SESSION,1,1,READ,SELECT,{'İ' * 600},t,select 1,<none>", "target.type is 1200 characters"),
    ],
)
def test_unusual_audit_entries_are_rejected_with_the_reason(audit, reason):
    with pytest.raises(FormatError, match=reason):
        pgaudit.parse(csv_line(audit).encode())
