"""The ``[receivers]`` section of trailseal.toml: how non-native documents are mapped, syslog, tail."""

from __future__ import annotations

from typing import Any

import msgspec

# Splunk sourcetypes that name a trailseal format (HEC events with another sourcetype use hec_format).
HEC_SOURCETYPES = {
    "access_combined": "access_log",
    "access_common": "access_log",
    "nginx:plus:access": "access_log",
    "linux_secure": "auth_log",
    "syslog": "syslog",
    "aws:cloudtrail": "cloudtrail",
    "kube:apiserver:audit": "k8s_audit",
    "postgresql": "pgaudit",
    "trailseal": "ndjson",
}


class SyslogSettings(msgspec.Struct, forbid_unknown_fields=True):
    """Syslog listeners; an address is "host:port" and None leaves that transport off."""

    udp: str | None = None
    tcp: str | None = None
    tls: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    log: str = "default"
    max_frame: int = 65535
    default_tz: str | None = None


class TailSettings(msgspec.Struct, forbid_unknown_fields=True):
    """One group of files followed with one format."""

    paths: list[str]
    format: str
    log: str = "default"
    component: str | None = None
    state: str = "tail.state"


class ReceiversConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Everything the receivers are configured with (all optional)."""

    es_format: str = "generic"
    hec_format: str = "generic"
    hec_sourcetypes: dict[str, str] = {}  # more sourcetype -> format entries; HEC_SOURCETYPES apply too
    mapping_file: str | None = None
    es_version: str = "8.17.0"
    syslog: SyslogSettings = msgspec.field(default_factory=SyslogSettings)
    tail: list[TailSettings] = []


def sourcetype_format(settings: ReceiversConfig, sourcetype: Any) -> str:
    """The format for a HEC event's sourcetype: configured, built in, else ``hec_format``."""
    if not isinstance(sourcetype, str):
        return settings.hec_format
    return settings.hec_sourcetypes.get(sourcetype) or HEC_SOURCETYPES.get(sourcetype) or settings.hec_format


def receivers_config(config: Any) -> ReceiversConfig:
    """The receivers section of a loaded Config, or the defaults when it has none."""
    found = getattr(config, "receivers", None)
    return found if isinstance(found, ReceiversConfig) else ReceiversConfig()
