"""The forwarder subprocess: reads request records from its stdin (see ``trailseal.sdk.forwarder``),
renders their events in order on its main thread (by shape where it can, ``trailseal.sdk.lines``) and
spools them through an ordinary ``Client`` built with the application client's options, whose sender
thread ships them.

    python -m trailseal.sdk.forwarder_process   # started by the app's client, never by hand

At the end of its input (the app closed its client, exited, or was killed) it closes its client —
sealing what it can within the timeout and leaving the rest in the spool — and exits (0: all sealed).
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import time
from typing import Any

from trailseal.sdk.client import Client, Clock, new_id
from trailseal.sdk.forwarder import AUDITOR, CLOSE, CONFIG, FLUSH, RECORDS, FrameReader, frame, write_all
from trailseal.sdk.lines import RecordLines
from trailseal.sdk.web import Forwarded, HttpAuditor

MAX_RECORDS = 5_000  # records spooled in one write
GC_THRESHOLDS = (50_000, 10, 10)  # young collections every 50k allocations, not 700; older ones as by default


def quiet_gc() -> None:
    """Keep the collector off the hot path: what start-up made (modules, the client) is frozen out of its
    walks, and young collections run every GC_THRESHOLDS[0] allocations (this process makes no cycles per
    record; the ones httpx may make are still collected)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


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
    lines = RecordLines(auditors, new_id.many, Clock(), client._source, client.log_name)
    close_timeout = 5.0
    quiet_gc()

    def full_path(record: list) -> Forwarded:
        return Forwarded(auditors[record[0]], record)

    following = None
    while (message := following or reader.read()) is not None:
        following, kind = None, message[0]
        if kind == RECORDS:  # built and spooled right here: this loop has nothing else to do meanwhile
            records, deadline = message[1], time.monotonic() + client.spool_interval
            while len(records) < MAX_RECORDS:  # what arrives within spool_interval: one write (and fsync)
                following = reader.read(deadline)
                if following is None or following[0] != RECORDS:
                    break
                records += following[1]
                following = None
            client.spool_records(records, lines.lines(records), full_path)
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
