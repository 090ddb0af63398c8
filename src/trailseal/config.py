"""Configuration: one `trailseal.toml` in the data dir, overridden by `TRAILSEAL_*` variables."""

from __future__ import annotations

import os
import re
import socket
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from trailseal.receivers.settings import ReceiversConfig

CONFIG_FILE = "trailseal.toml"
KEY_FILE = "signing.key"
VKEY_FILE = "signing.vkey"
DEFAULT_DATA = "./trailseal-data"


class ServerConfig(msgspec.Struct, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 16 * 1024 * 1024
    max_events_per_request: int = 10_000
    max_queue_events: int = 200_000
    public_tlog: bool = True
    rate_limit_per_token: float = 0.0  # requests/s; 0 = unlimited
    body_timeout_seconds: float = 30.0  # a body slower than this gets 408 (slowloris)
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None


class AlertsConfig(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool = True
    rules: list[str] = []  # extra Sigma rule files or directories, beside the built-in pack
    webhook_url: str | None = None
    webhook_secret: str | None = None
    slack_webhook_url: str | None = None  # Slack (or compatible) incoming webhook
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "trailseal@localhost"
    smtp_to: list[str] | str = []  # a list, or "a@x, b@y"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False  # implicit TLS (port 465)
    syslog_address: str | None = None  # udp://host:514, tcp://host:601, tls://host:6514 (RFC 5424)
    syslog_facility: str = "authpriv"
    tls_ca_file: str | None = None  # CA (PEM) trusted by the SMTP and syslog TLS sinks
    retry_attempts: int = 5
    retry_backoff_seconds: float = 0.2
    stdout: bool = False
    silent_after_seconds: float = 600.0
    max_alerts_per_rule_per_minute: int = 20  # beyond this a rule's matches are rolled up into one alert; 0 = off
    integrity_interval_seconds: float = 30.0
    integrity_full_every: int = 20  # a full re-verify every N intervals

    def __post_init__(self) -> None:
        from trailseal.alerts.settings import check

        check(self)


class ComplianceConfig(msgspec.Struct, forbid_unknown_fields=True):
    """What the compliance report and `trailseal validate` hold the data against (docs/compliance.md)."""

    expected_sources: list[str] = []  # source.component values that must send events
    required_fields: list[str] = msgspec.field(
        default_factory=lambda: ["actor.id", "action", "time", "outcome", "origin", "target"])
    min_field_rate: float = 0.99  # share of a source's records that must carry every required field
    min_conformance_rate: float = 0.99  # sealed / (sealed + rejected) records
    max_clock_skew_seconds: float = 120.0  # p99 of |received - time| per source
    ack_within_hours: float = 24.0  # alerts older than this must be acknowledged
    validate_interval_seconds: float = 3600.0  # `serve` runs the validation this often; 0 = never
    validate_window: str = "24h"  # how far back a validation looks
    min_retention: str = "1y"  # `validate` fails when a policy keeps entries for less


class BusConfig(msgspec.Struct, forbid_unknown_fields=True):
    """[bus]: the NATS JetStream ingest bus of `serve --role ingest|sequencer|api|detector`."""

    url: str = "nats://127.0.0.1:4222"
    stream: str = "TRAILSEAL"
    subject: str = "trailseal.events"  # each log publishes on <subject>.<log>
    replicas: int = 1  # 3 on a NATS cluster: an ack then means a quorum has the event
    duplicate_window_seconds: float = 120.0  # JetStream drops re-sent ids within this window
    max_stream_bytes: int = -1  # -1: unlimited; a full stream answers 503, never discards
    publish_timeout_seconds: float = 5.0  # no JetStream ack within this: 503 + Retry-After
    max_in_flight: int = 50_000  # unacknowledged publishes per ingest node
    fetch_batch: int = 5_000  # a sequencer fetches (and group-commits) up to this many at once
    commits_in_flight: int = 3  # batches a sequencer has queued to its writer before acking the first
    leader_poll_seconds: float = 0.5  # how often a standby sequencer tries the leader lock


class Config(msgspec.Struct, forbid_unknown_fields=True):
    """Everything a data dir is configured with."""

    origin: str  # checkpoint origins are `<origin>/<log>`; also the signing key's name
    store: str = "sqlite:trailseal.db"
    key_file: str = KEY_FILE
    max_commit_events: int = 20_000
    prepare_workers: int = -1  # processes that validate and protect big appends; -1: one per core (2+ cores)
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    alerts: AlertsConfig = msgspec.field(default_factory=AlertsConfig)
    privacy: dict[str, Any] = {}
    retention: dict[str, Any] = {}
    receivers: ReceiversConfig = msgspec.field(default_factory=ReceiversConfig)
    bus: BusConfig = msgspec.field(default_factory=BusConfig)
    compliance: ComplianceConfig = msgspec.field(default_factory=ComplianceConfig)


class ConfigError(ValueError):
    """The configuration is missing or wrong; the message says what to fix."""


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data dir: the argument, else $TRAILSEAL_DATA, else ./trailseal-data."""
    return Path(path or os.environ.get("TRAILSEAL_DATA") or DEFAULT_DATA)


def default_origin() -> str:
    """A key/origin name from the host name (C2SP key names: no spaces, no '+')."""
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "localhost"
    return f"{host}.trailseal"


def load(directory: Path) -> Config:
    """Read `trailseal.toml` from ``directory`` and apply environment overrides."""
    path = directory / CONFIG_FILE
    if not path.exists():
        raise ConfigError(f"{path} not found: run `trailseal init --data {directory}` first")
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    apply_env(raw, os.environ)
    try:
        config = msgspec.convert(raw, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    problem = limits_problem(config)
    if problem:
        raise ConfigError(f"{path}: {problem}")
    return config


def limits_problem(config: Config) -> str | None:
    """What is wrong with the ingest limits (a request the writer's queue could never take would be
    answered 503 forever, and its sender would retry it forever), or None."""
    server = config.server
    for name in ("max_body_bytes", "max_events_per_request", "max_queue_events"):
        if getattr(server, name) < 1:
            return f"[server] {name} = {getattr(server, name)}: it must be at least 1"
    if not 0 <= server.port <= 65535:
        return f"[server] port = {server.port}: it must be 0-65535"
    if server.max_queue_events < server.max_events_per_request:
        return (f"[server] max_queue_events = {server.max_queue_events} is below max_events_per_request = "
                f"{server.max_events_per_request}: a full request could never be queued; raise the first or "
                "lower the second")
    if config.bus.max_in_flight < server.max_events_per_request:
        return (f"[bus] max_in_flight = {config.bus.max_in_flight} is below [server] max_events_per_request = "
                f"{server.max_events_per_request}: an ingest node could never publish a full request")
    return None


def apply_env(raw: dict[str, Any], env: os._Environ | dict[str, str]) -> None:
    """`TRAILSEAL_STORE=...` sets `store`; `TRAILSEAL_SERVER__PORT=9000` sets `server.port`."""
    for name, value in env.items():
        if not name.startswith("TRAILSEAL_") or name in ("TRAILSEAL_DATA",) or name.startswith("TRAILSEAL_TEST"):
            continue
        path = name[len("TRAILSEAL_"):].lower().split("__")
        if path[0] not in Config.__struct_fields__:
            continue
        node = raw
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value


def render(origin: str, store: str = "sqlite:trailseal.db") -> str:
    """The commented config file `trailseal init` writes."""
    return f"""# trailseal configuration. Every key can be overridden by an environment variable:
# TRAILSEAL_STORE=..., TRAILSEAL_SERVER__PORT=9000 (double underscore for sections).

# Checkpoints are signed as origin "<origin>/<log>"; this is also the signing key's name.
origin = "{origin}"

# "sqlite:<file in the data dir>" (embedded default) or "postgresql://user@host/db".
store = "{store}"

# Ed25519 signing key (C2SP note format), mode 0600.
key_file = "{KEY_FILE}"

# Most events sealed in one group commit (one transaction, one signed checkpoint).
max_commit_events = 20000

# Processes that validate and protect the events of big library appends (128+ events) beside the
# writer; -1: one per core when there are two or more, 0: all in the appending process.
prepare_workers = -1

[server]
host = "127.0.0.1"
port = 8080
max_body_bytes = 16777216
max_events_per_request = 10000
max_queue_events = 200000
# Serve /tlog/<log>/... (checkpoint, tiles, entries) without a token, as C2SP tlog-tiles expects.
public_tlog = true

[alerts]
# Sigma detection on the sealed stream (built-in pack + these rule files/dirs); alerts are sealed
# as `finding` events in the `trailseal` log and sent to the sinks below.
enabled = true
rules = []
# webhook_url = "https://alerts.example/hook"   # POSTs JSON, header X-Trailseal-Signature: sha256=<HMAC>
# webhook_secret = "change me"
# slack_webhook_url = "https://hooks.slack.com/services/..."   # Block Kit message with a text fallback
# smtp_host = "mail.example"      # email with plain-text and HTML bodies
# smtp_port = 587
# smtp_starttls = true
# smtp_from = "trailseal@example"
# smtp_to = ["soc@example"]
# syslog_address = "udp://siem.example:514"   # RFC 5424; or tcp://host:601, tls://host:6514
# Failed deliveries are retried with backoff, then written to alerts.dead-letter in the data dir.
stdout = false
silent_after_seconds = 600
# Storm control: a rule raises at most this many alerts a minute; its further matches in that minute
# become one alert listing them (sealed and delivered like the others). 0 raises every match on its own.
max_alerts_per_rule_per_minute = 20

[privacy]
# Personal data is protected before sealing (default policy). See `trailseal privacy show`.
enabled = true
"""
