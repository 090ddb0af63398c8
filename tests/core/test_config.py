"""trailseal.toml's ingest limits: what would stall every large request is refused when the config loads."""

from __future__ import annotations

import pytest

import trailseal.config as cfg


@pytest.mark.parametrize(("key", "value", "message"), [
    ("SERVER__MAX_QUEUE_EVENTS", "5000", "max_queue_events = 5000 is below max_events_per_request = 10000"),
    ("SERVER__MAX_EVENTS_PER_REQUEST", "0", "max_events_per_request = 0: it must be at least 1"),
    ("SERVER__MAX_BODY_BYTES", "-1", "max_body_bytes = -1: it must be at least 1"),
    ("SERVER__PORT", "70000", "port = 70000: it must be 0-65535"),
    ("BUS__MAX_IN_FLIGHT", "100", r"\[bus\] max_in_flight = 100 is below \[server\] max_events_per_request"),
])
def test_limits_that_could_never_take_a_full_request_stop_the_config_from_loading(data_dir, monkeypatch, key,
                                                                                   value, message):
    monkeypatch.setenv(f"TRAILSEAL_{key}", value)
    with pytest.raises(cfg.ConfigError, match=message):
        cfg.load(data_dir)


def test_consistent_limits_load(data_dir, monkeypatch):
    monkeypatch.setenv("TRAILSEAL_SERVER__MAX_QUEUE_EVENTS", "2000")
    monkeypatch.setenv("TRAILSEAL_SERVER__MAX_EVENTS_PER_REQUEST", "2000")
    config = cfg.load(data_dir)
    assert (config.server.max_queue_events, config.server.max_events_per_request) == (2000, 2000)
