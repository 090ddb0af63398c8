"""The logging handler: standard log records become audit events, read back from a real server."""

from __future__ import annotations

import logging

import pytest

from trailseal.sdk import TrailsealHandler
from trailseal.sdk.handler import action_from


@pytest.fixture
def audit_logger(client):
    logger = logging.getLogger("Billing.Refunds")
    handler = TrailsealHandler(client, level=logging.INFO)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield logger
    logger.removeHandler(handler)


def test_records_become_events_with_defaults_and_extra_fields(audit_logger, events):
    audit_logger.debug("below the handler's level")
    audit_logger.info("refund %s issued", "r-1", extra={"actor": "alice", "action": "refund.issue",
                                                         "category": "data_change", "outcome": "success",
                                                         "target": {"type": "order", "id": "o-42"}, "amount": 12})
    audit_logger.warning("card declined")
    try:
        raise ValueError("bad amount")
    except ValueError:
        audit_logger.exception("refund failed", extra={"actor": {"id": "bob", "type": "service"}})
    refund, declined, failed = events(3)
    assert (refund["action"], refund["category"], refund["outcome"]) == ("refund.issue", "data_change", "success")
    assert refund["actor"]["id"] == "alice" and refund["target"] == {"type": "order", "id": "o-42"}
    assert refund["attributes"]["message"] == "refund r-1 issued" and refund["attributes"]["amount"] == 12
    assert (declined["action"], declined["category"], declined["outcome"], declined["severity"]) == (
        "billing.refunds", "system", "unknown", "medium")
    assert failed["outcome"] == "error" and failed["severity"] == "high" and failed["actor"]["type"] == "service"
    assert failed["reason"] == "ValueError: bad amount" and "Traceback" in failed["attributes"]["exception"]


def test_the_clients_own_warnings_do_not_loop_back(client, events):
    handler = TrailsealHandler(client)
    logging.getLogger("trailseal.sdk").addHandler(handler)
    try:
        logging.getLogger("trailseal.sdk").warning("retrying")
        logging.getLogger("app").addHandler(handler)
        logging.getLogger("app").warning("real")
    finally:
        logging.getLogger("trailseal.sdk").removeHandler(handler)
        logging.getLogger("app").removeHandler(handler)
    assert [e["attributes"]["message"] for e in events(1)] == ["real"]


def test_action_from_logger_name():
    assert action_from("MyApp.Auth") == "myapp.auth"
    assert action_from("__main__") == "main" and action_from("a..b c") == "a.b_c" and action_from("") == "log"
