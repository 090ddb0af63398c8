"""Start the receivers that `[receivers]` in trailseal.toml configures, beside the API (`trailseal serve`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trailseal.datadir import Trail
from trailseal.receivers.settings import receivers_config
from trailseal.receivers.syslog import SyslogThread, tls_context
from trailseal.receivers.tail import TailThread


@dataclass
class Receivers:
    """The running syslog listeners and file tails; ``stop()`` seals what they read, then ends them."""

    syslog: SyslogThread | None = None
    tails: list[TailThread] = field(default_factory=list)

    def stop(self) -> None:
        for tail in self.tails:
            tail.stop()
        if self.syslog is not None:
            self.syslog.stop()


def start_receivers(trail: Trail, metrics: Any = None) -> Receivers:
    """Start the configured syslog listeners and tails; nothing when none is configured."""
    settings = receivers_config(trail.config)
    running = Receivers()
    if settings.syslog.udp or settings.syslog.tcp or settings.syslog.tls or settings.tail:
        trail.sealer  # noqa: B018 - take the writer once, before threads race to (Trail.sealer is lazy)
    syslog = settings.syslog
    if syslog.udp or syslog.tcp or syslog.tls:
        context = (
            tls_context(
                _path(trail, syslog.tls_cert),
                _path(trail, syslog.tls_key),
                _path(trail, syslog.tls_client_ca),
            )
            if syslog.tls
            else None
        )
        ctx = {"default_tz": syslog.default_tz} if syslog.default_tz else None
        running.syslog = SyslogThread(
            trail,
            udp=syslog.udp,
            tcp=syslog.tcp,
            tls=syslog.tls,
            ssl_context=context,
            log_name=syslog.log,
            max_frame=syslog.max_frame,
            ctx=ctx,
            metrics=metrics,
        ).start()
    for group in settings.tail:
        ctx = {"component": group.component} if group.component else None
        running.tails.append(
            TailThread(
                trail,
                group.paths,
                group.format,
                trail.directory / group.state,
                ctx=ctx,
                log_name=group.log,
                metrics=metrics,
            ).start()
        )
    return running


def _path(trail: Trail, name: str | None) -> str | None:
    """A configured file, relative to the data dir unless absolute."""
    return str(trail.directory / name) if name else None
