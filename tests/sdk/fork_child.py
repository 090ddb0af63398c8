"""A process whose client forks: parent and child each log three events, then close.

    python -m tests.sdk.fork_child URL TOKEN LOG SPOOL_DIR
"""

from __future__ import annotations

import os
import sys

from trailseal.sdk.client import Client


def main(url: str, token: str, log: str, spool_dir: str) -> None:
    client = Client(url, token, log=log, spool_dir=spool_dir, flush_interval=0.05)
    client.log(action="fork.before")
    pid = os.fork()
    who = "child" if pid == 0 else "parent"
    for i in range(3):
        client.log(action=f"fork.{who}", n=i)
    ok = client.close(timeout=10)
    if pid == 0:
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    sys.exit(0 if ok and status == 0 else 1)


if __name__ == "__main__":
    main(*sys.argv[1:])
