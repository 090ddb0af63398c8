"""Detection in a child process of `serve`: the Sigma engine and the silent-source watch run there, on the
other core, instead of under the server's GIL beside ingest.

The parent hands each commit's sealed entries (log, index, canonical bytes, the entries' vault rows) to
the child over its stdin; the child answers with the alerts they raise (and silent-source alerts when a
source goes quiet) over its stdout, after storm control (alerts/rollup.py): a noisy rule's matches past its
per-minute budget are folded here, and the parent gets the budgeted alerts and one rollup per rule and
minute, not every match (the server bench's events raise 1.3 alerts each). The parent seals and delivers
them as before (alerts/service.py); the child never touches the store. Frames are msgpack,
length-prefixed. A child that dies loses the rollups of its current minute (the matched events stay
sealed; the parent detects from then on, with its own budget).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import fields
from operator import attrgetter
from pathlib import Path
from typing import BinaryIO

import msgspec

from trailseal.detect.engine import Alert
from trailseal.frames import read_frame, widen_pipe, write_frame
from trailseal.privacy.vault import VaultRow

log = logging.getLogger("trailseal.alerts")
_entries = msgspec.msgpack.Decoder(list[tuple[str, int, bytes, list[VaultRow]]])
_encode = msgspec.msgpack.Encoder().encode


_alert_row = attrgetter(*(field.name for field in fields(Alert)))  # its fields as a tuple, nothing copied


def _alert_rows(alerts: list[Alert]) -> bytes:
    """Alerts as msgpack rows of their fields in order (``dataclasses.astuple`` would deep-copy each)."""
    return _encode([_alert_row(alert) for alert in alerts])


def _alerts(frame: bytes) -> list[Alert]:
    """Alerts as the child sent them (msgpack turned their (log, index) tuples into lists)."""
    return [Alert(*row[:5], [tuple(pair) for pair in row[5]], *row[6:]) for row in msgspec.msgpack.decode(frame)]


class DetectorProcess:
    """The parent's side: start the child, send it sealed entries, hand its alerts to ``on_alerts``."""

    def __init__(self, directory: str, on_alerts: Callable[[list[Alert]], None]):
        self.on_alerts = on_alerts
        self.proc = subprocess.Popen([sys.executable, "-m", "trailseal.alerts.worker", directory,
                                      "--parent", str(os.getpid())],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        widen_pipe(self.proc.stdin)  # a commit's entries cross in one write, not one per 64 KiB the child reads
        self._reader = threading.Thread(target=self._read, name="trailseal-detect-alerts", daemon=True)
        self._reader.start()

    def send(self, sealed: list[tuple[str, int, bytes, tuple]]) -> bool:
        """Queue a commit's entries for detection; False if the child is gone (the caller detects here)."""
        try:
            write_frame(self.proc.stdin, _encode([(log, index, data, list(vault)) for log, index, data, vault in sealed]))
            return True
        except (OSError, ValueError):
            return False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Close the child's input: it finishes what it holds, answers, and exits; then the reader ends."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout)

    def _read(self) -> None:
        while (frame := read_frame(self.proc.stdout)) is not None:
            alerts = _alerts(frame)
            if alerts:
                self.on_alerts(alerts)
        if self.proc.wait() not in (0, -15):  # from here on the parent detects (send() answers False)
            log.error("the detector process exited with %s; detecting in the server process",
                      self.proc.returncode)


def run(directory: str, parent: int, stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The child: detect on every frame of sealed entries until stdin ends or the parent is gone."""
    from trailseal import config as cfg
    from trailseal.alerts.rollup import RollupGate
    from trailseal.alerts.service import detect_batch, engine_for
    from trailseal.detect.watch import SilentSourceWatch

    conf = cfg.load(Path(directory)).alerts
    engine = engine_for(conf)
    silent = SilentSourceWatch(conf.silent_after_seconds)
    gate = RollupGate(conf.max_alerts_per_rule_per_minute)
    lock, done = threading.Lock(), threading.Event()

    def answer(alerts: list[Alert]) -> None:
        """What storm control lets through now (and rollups whose minute ended), to the parent; under ``lock``."""
        ready = gate.admit(alerts)
        if ready:
            write_frame(stdout, _alert_rows(ready))

    def watch() -> None:
        while not done.wait(min(5.0, max(0.2, silent.threshold / 4))):
            if os.getppid() != parent:
                os._exit(0)  # the server died without closing our input
            with lock:
                answer(silent.check(time.time()))

    threading.Thread(target=watch, name="trailseal-silent", daemon=True).start()
    while (frame := read_frame(stdin)) is not None:
        entries = _entries.decode(frame)
        with lock:
            answer(detect_batch(engine, silent, entries))
    done.set()
    with lock:
        held = gate.flush()  # the input ended (the server stops): the rollups of the minute under way
        if held:
            write_frame(stdout, _alert_rows(held))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m trailseal.alerts.worker",
                                     description="Sigma detection for `trailseal serve` (started by it).")
    parser.add_argument("directory")
    parser.add_argument("--parent", type=int, default=os.getppid())
    args = parser.parse_args(argv)
    run(args.directory, args.parent, sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
