"""A process that logs through a spooled client and is then SIGKILLed by its own hand.

    python -m tests.sdk.spool_child URL SPOOL_DIR ON_DISK IN_MEMORY

It logs ON_DISK events and waits until the writer has put them in the spool, prints ``spooled``; then the
disk stalls (the writer blocks in its next write), it logs IN_MEMORY more and kills itself.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from trailseal.sdk.client import Client


def main(url: str, spool_dir: str, on_disk: int, in_memory: int) -> None:
    client = Client(url, "token", spool_dir=spool_dir, max_queue=10_000_000, fsync="always")
    for i in range(on_disk):
        client.log(action="crash.before", n=i)
    while client._spool.appended < on_disk:
        time.sleep(0.01)
    print("spooled", flush=True)
    client._spool.append = lambda lines, force=False: time.sleep(3600)  # a disk that stopped answering
    for i in range(in_memory):
        client.log(action="crash.after", n=i)
    time.sleep(0.1)  # the writer has taken them from the queue and is stuck writing them
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
