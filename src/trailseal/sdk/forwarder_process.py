"""The forwarder subprocess: reads request records from its stdin (see ``trailseal.sdk.forwarder``) and
hands them, in order, to an ordinary ``Client`` built with the application client's options, which
builds, validates, spools and sends their events.

    python -m trailseal.sdk.forwarder_process   # started by the app's client, never by hand

At the end of its input (the app closed its client, exited, or was killed) it closes its client —
sealing what it can within the timeout and leaving the rest in the spool — and exits (0: all sealed).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from trailseal.sdk.client import Client
from trailseal.sdk.forwarder import AUDITOR, CLOSE, CONFIG, FLUSH, RECORDS, FrameReader, frame, write_all
from trailseal.sdk.web import Forwarded, HttpAuditor


def auditor(client: Client, config: list) -> HttpAuditor:
    """An app middleware's auditor, as far as rendering its events goes."""
    auth_paths, proxies = config
    return HttpAuditor(client, auth_paths=auth_paths, trusted_proxies=proxies, transport="thread")


def serve(reader: FrameReader, reply_fd: int) -> int:
    """Forward until the end of input; the exit status."""
    import msgspec

    encoder = msgspec.msgpack.Encoder()
    config = reader.read()
    if not config or config[0] != CONFIG:
        return 2
    options: dict[str, Any] = {**config[1], "max_block": 1.0}  # here, waiting beats dropping
    client = Client(**options)
    auditors = [auditor(client, c) for c in config[2]]
    close_timeout = 5.0
    submit = client.submit
    while (message := reader.read()) is not None:
        kind = message[0]
        if kind == RECORDS:
            for record in message[1]:
                submit(Forwarded(auditors[record[0]], record))
        elif kind == FLUSH:
            sealed = client.flush(message[2])
            write_all(reply_fd, frame(encoder, [FLUSH, message[1], sealed]))
        elif kind == AUDITOR:
            auditors.append(auditor(client, message[2:]))
        elif kind == CLOSE:
            close_timeout = message[1]
    return 0 if client.close(close_timeout) else 3


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the app's Ctrl-C or SIGTERM: it drains when the app exits
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    reply_fd = os.dup(1)
    os.dup2(2, 1)  # a stray print() must not land in the replies
    sys.exit(serve(FrameReader(0), reply_fd))


if __name__ == "__main__":
    main()
