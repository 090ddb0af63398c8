"""Batch pulls from a durable JetStream consumer through one inbox subscription.

nats-py's `fetch()` awaits each message with its own timeout task, which costs more per event than
sealing it; here one subscription callback collects messages into a list, and a fetch returns as
soon as the batch is full or the flow pauses, whichever comes first.
"""

from __future__ import annotations

import asyncio
import json

from nats.js.api import Header

QUIET_SECONDS = 0.005  # a batch in progress ends when nothing more arrived for this long
IDLE_POLL_SECONDS = 0.02


class BatchPuller:
    """Pull up to N messages at a time from ``durable`` on ``stream``, in stream order."""

    def __init__(self, nc, stream: str, durable: str):
        self._nc = nc
        self._subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._inbox = nc.new_inbox()
        self._arrived: list = []
        self._sub = None

    async def start(self) -> BatchPuller:
        self._sub = await self._nc.subscribe(self._inbox, cb=self._collect, pending_msgs_limit=1_000_000,
                                             pending_bytes_limit=1 << 30)
        return self

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

    async def _collect(self, msg) -> None:
        """Keep real messages; status messages (404 no messages, 408 expired) only end a request."""
        if msg.headers and Header.STATUS in msg.headers and not msg.data:
            return
        self._arrived.append(msg)

    async def fetch(self, batch: int, wait: float) -> list:
        """Up to ``batch`` messages: as soon as that many arrived, or the flow paused, or ``wait`` passed."""
        missing = batch - len(self._arrived)
        if missing > 0:
            request = {"batch": missing, "expires": int(wait * 1_000_000_000)}
            await self._nc.publish(self._subject, json.dumps(request).encode(), reply=self._inbox)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while len(self._arrived) < batch and loop.time() < deadline:
            before = len(self._arrived)
            await asyncio.sleep(QUIET_SECONDS if before else IDLE_POLL_SECONDS)
            if before and len(self._arrived) == before:
                break
        taken, self._arrived = self._arrived[:batch], self._arrived[batch:]
        return taken
