"""start_receivers: the syslog listeners and tails that [receivers] configures, started and stopped."""

from __future__ import annotations

import socket
import types

import trailseal
from tests.receivers.conftest import sealed, wait_for
from trailseal.receivers.service import start_receivers
from trailseal.receivers.settings import ReceiversConfig, SyslogSettings, TailSettings, receivers_config


def test_configured_receivers_start_and_stop(data_dir, tmp_path):
    log_file = tmp_path / "auth.log"
    log_file.write_text(
        "Mar  1 10:00:00 bastion sshd[42]: Accepted publickey for deploy from 203.0.113.9 port 22 ssh2\n"
    )
    trail = trailseal.open(data_dir)
    trail.sealer  # noqa: B018 - opened with the real config before it is swapped below
    settings = ReceiversConfig(
        syslog=SyslogSettings(tcp="127.0.0.1:0", log="net"),
        tail=[TailSettings(paths=[str(log_file)], format="auth_log", log="hosts")],
    )
    trail.config = types.SimpleNamespace(receivers=settings, server=trail.config.server)
    running = start_receivers(trail)
    try:
        with socket.create_connection(running.syslog.addresses["tcp"]) as sock:
            sock.sendall(b"<13>Oct 11 22:14:15 router ospf: neighbor down\n")
        wait_for(lambda: trail.store.tree_size("net") >= 1 and trail.store.tree_size("hosts") >= 1)
    finally:
        running.stop()
    assert sealed(trail, "net")[0]["attributes"]["message"] == "neighbor down"
    assert sealed(trail, "hosts")[0]["action"] == "user.login"
    assert (data_dir / "tail.state").exists()
    trail.close()


def test_defaults_when_the_config_has_no_receivers_section(data_dir):
    trail = trailseal.open(data_dir)
    assert receivers_config(trail.config) == ReceiversConfig()
    running = start_receivers(trail)
    assert running.syslog is None and running.tails == []
    trail.close()
