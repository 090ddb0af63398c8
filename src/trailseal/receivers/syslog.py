"""Syslog listeners: RFC 5424 and RFC 3164 over UDP, TCP (RFC 6587) and TLS (RFC 5425).

Every frame is parsed with :mod:`trailseal.formats.syslog` (structured data kept) and sealed
through ``Trail.sealer`` in batches, so one group commit holds many frames. A frame that cannot be
read is rejected — counted in ``stats`` (and ``/metrics`` when run beside the API) and recorded in
the ``trailseal`` meta log as ``trailseal.ingest.rejected`` with its SHA-256 — while the
connection's other frames go on. When the sealer falls behind, the TCP/TLS listeners stop reading
(TCP flow control pushes back on senders) and UDP stops draining its socket; nothing is dropped
by trailseal. A message that only has ``<PRI>`` before its text (what Python's ``SysLogHandler``
sends) gets the timestamp and sender address a relay adds (RFC 3164 §4.3.3) and
``syslog.time_missing``. Each event notes ``network.peer.address`` and ``syslog.transport``.

    run_syslog(trail, udp="0.0.0.0:5514", tcp="0.0.0.0:5514")          # blocks; Ctrl-C drains
    with SyslogThread(trail, tcp=("127.0.0.1", 0)) as server: ...      # beside another loop
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
import threading
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from trailseal.datadir import Trail
from trailseal.event import Sealable
from trailseal.pipeline import Overloaded
from trailseal.receivers.framing import Framer, Rejected, rejected
from trailseal.receivers.intake import (
    Rejection,
    Stats,
    count,
    log,
    meta_item,
    per_log,
    rejected_bytes,
    rejection_event,
)
from trailseal.receivers.records import prepare_records

Address = str | tuple[str, int]
READ_SIZE = 65536
SEAL_ATTEMPTS = 5


def parse_address(address: Address) -> tuple[str, int]:
    """("host", port) from "host:port", "[v6]:port" or a tuple."""
    if isinstance(address, tuple):
        return address
    host, _, port = address.rpartition(":")
    if not host or not port.isdecimal():
        raise ValueError(f"listen address {address!r} is not host:port")
    return host.strip("[]"), int(port)


class Intake:
    """Frames from every connection, normalized off the event loop and sealed in group commits.

    ``add`` never blocks; readers ``await room()`` before reading more, which holds them while more
    than ``max_pending`` frames wait to be sealed."""

    def __init__(
        self,
        trail: Trail,
        *,
        log_name: str = "default",
        ctx: dict[str, Any] | None = None,
        batch: int = 2000,
        linger: float = 0.002,
        max_pending: int = 50_000,
        metrics: Any = None,
    ):
        self.trail, self.log_name, self.ctx = trail, log_name, dict(ctx or {})
        self.batch, self.linger, self.max_pending, self.metrics = batch, linger, max_pending, metrics
        self.stats = Stats()
        self.pauses = 0  # how often readers had to wait for the sealer
        self._groups: list[tuple[str, str, list[bytes], list[Rejected]]] = []
        self._queued = 0
        self._pending = 0
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._commits: asyncio.Queue = asyncio.Queue(maxsize=4)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="trailseal-syslog-parse")
        self._tasks: list[asyncio.Task] = []

    def start(self) -> Intake:
        self.trail.pool.start(timeout=0)  # the prepare workers, up before the first busy batch (not awaited)
        self._tasks = [asyncio.create_task(self._batches()), asyncio.create_task(self._committed())]
        return self

    def add(self, peer: str, transport: str, frames: list[bytes], rejected: list[Rejected]) -> None:
        """Queue a connection's frames and framing rejections for the next batch."""
        n = len(frames) + len(rejected)
        if not n:
            return
        self._groups.append((peer, transport, frames, rejected))
        self._queued += n
        self._pending += n
        self.stats.records += n
        self._idle.clear()
        if self._pending >= self.max_pending and self._room.is_set():
            self._room.clear()
            self.pauses += 1
        self._wake.set()

    @property
    def has_room(self) -> bool:
        return self._room.is_set()

    async def room(self) -> None:
        """Wait until the sealer has caught up enough to read more."""
        await self._room.wait()

    async def drain(self) -> None:
        """Wait until everything added so far is sealed (or has failed)."""
        await self._idle.wait()

    async def close(self) -> None:
        await self.drain()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._executor.shutdown(wait=True)

    async def _batches(self) -> None:
        """Take what is queued (after a short linger when it is small), normalize it, submit it."""
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            if self._queued < self.batch and self.linger:
                await asyncio.sleep(self.linger)
            self._wake.clear()
            groups, n = self._groups, self._queued
            self._groups, self._queued = [], 0
            items, rejections = await loop.run_in_executor(self._executor, self._normalize, groups)
            await self._commits.put((await self._submit(items), items, n, rejections))

    def _normalize(
        self, groups: list[tuple[str, str, list[bytes], list[Rejected]]]
    ) -> tuple[list[Sealable], list[Rejection]]:
        """Sealable events for every good frame, and one meta-log record per sender with rejections."""
        received = self.trail.clock()
        records = [(frame, peer, transport) for peer, transport, frames, _ in groups for frame in frames]
        options = {"ctx": self.ctx, "log": self.log_name}
        prepared, refused_at = prepare_records(self.trail, "syslog", options, records, received)
        items = [item for _, item in prepared]
        refused: dict[tuple[str, str], list[Rejection]] = defaultdict(list)
        for peer, transport, _, unframed in groups:
            refused[(peer, transport)].extend(
                Rejection(None, reason, None, digest, size) for reason, digest, size in unframed
            )
        for position, reason, _ in refused_at:
            frame, peer, transport = records[position]
            refused[(peer, transport)].append(rejected_bytes(None, reason, frame))
        all_refused = [r for rs in refused.values() for r in rs]
        for (peer, transport), rejections in refused.items():
            if rejections:
                item = meta_item(
                    self.trail.protection,
                    rejection_event(
                        "syslog",
                        rejections,
                        {"id": f"syslog:{peer}", "type": "service"},
                        received,
                        peer=peer,
                        transport=transport,
                    ),
                    received,
                )
                items.extend([item] if item is not None else [])
        return items, all_refused

    async def _submit(self, items: list[Sealable]) -> list[Future]:
        """Hand a batch to the sealer in slices its queue can hold, waiting (never dropping) while full."""
        sealer = self.trail.sealer
        size = max(1, min(self.batch, sealer.max_queue_events))
        futures = []
        for start in range(0, len(items), size):
            delay = 0.01
            while True:
                try:
                    futures.append(sealer.submit(items[start : start + size]))
                    break
                except Overloaded:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.5)
        return futures

    async def _committed(self) -> None:
        """Await each batch's commit in order; retry a failed commit, then count and log it."""
        while True:
            futures, items, n, rejections = await self._commits.get()
            for attempt in range(1, SEAL_ATTEMPTS + 1):
                try:
                    for future in futures:
                        await asyncio.wrap_future(future)
                    self._account(items, rejections)
                    break
                except Exception as exc:  # noqa: BLE001 - a store failure must not stop the listener
                    log.error("syslog: sealing %d events failed (attempt %d): %s", len(items), attempt, exc)
                    if attempt == SEAL_ATTEMPTS:
                        self.stats.failed += len(items)
                        break
                    await asyncio.sleep(0.1 * 2**attempt)
                    futures = await self._submit(items)  # ids already sealed dedupe
            self._settle(n)

    def _account(self, items: list[Sealable], rejections: list[Rejection]) -> None:
        events = [
            item
            for item in items
            if item.log != "trailseal" or item.event.action != "trailseal.ingest.rejected"
        ]
        self.stats.sealed += len(events)
        self.stats.reject(rejections)
        count(self.metrics, per_log(events), rejections, "syslog")
        for rejection in rejections[:3]:
            log.info("syslog: rejected a frame (%d bytes): %s", rejection.size or 0, rejection.reason)

    def _settle(self, n: int) -> None:
        self._pending -= n
        if self._pending < self.max_pending:
            self._room.set()
        if self._pending == 0:
            self._idle.set()


class _Datagrams(asyncio.DatagramProtocol):
    """UDP: one datagram is one message; reading pauses while the intake is full."""

    def __init__(self, intake: Intake, max_frame: int):
        self.intake, self.max_frame = intake, max_frame
        self.transport: asyncio.DatagramTransport | None = None
        self._resuming: asyncio.Task | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        frame = data.rstrip(b"\r\n\x00")
        if len(frame) > self.max_frame:
            reason = f"datagram of {len(frame)} bytes exceeds the limit of {self.max_frame}"
            self.intake.add(addr[0], "udp", [], [rejected(reason, frame)])
        elif frame.strip():
            self.intake.add(addr[0], "udp", [frame], [])
        if not self.intake.has_room and self._resuming is None and self.transport is not None:
            self.transport.pause_reading()
            self._resuming = asyncio.get_running_loop().create_task(self._resume())

    async def _resume(self) -> None:
        await self.intake.room()
        self._resuming = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()


class SyslogServer:
    """The listeners of one event loop and their shared intake."""

    def __init__(
        self,
        trail: Trail,
        *,
        log_name: str = "default",
        max_frame: int = 65535,
        ctx: dict[str, Any] | None = None,
        metrics: Any = None,
        **intake_options: Any,
    ):
        self.trail, self.max_frame = trail, max_frame
        self.intake = Intake(trail, log_name=log_name, ctx=ctx, metrics=metrics, **intake_options)
        self.addresses: dict[str, tuple[str, int]] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self._udp: asyncio.DatagramTransport | None = None
        self._connections: set[asyncio.Task] = set()

    @property
    def stats(self) -> Stats:
        return self.intake.stats

    async def start(
        self,
        udp: Address | None = None,
        tcp: Address | None = None,
        tls: Address | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> SyslogServer:
        """Bind the listeners asked for (port 0 picks a free port; see ``addresses``)."""
        self.intake.start()
        loop = asyncio.get_running_loop()
        if udp is not None:
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self.intake, self.max_frame), local_addr=parse_address(udp)
            )
            self.addresses["udp"] = self._udp.get_extra_info("sockname")[:2]
        if tcp is not None:
            await self._listen("tcp", tcp, None)
        if tls is not None:
            if ssl_context is None:
                raise ValueError("a TLS listener needs an ssl_context (tls_context(cert, key))")
            await self._listen("tls", tls, ssl_context)
        return self

    async def _listen(self, transport: str, address: Address, context: ssl.SSLContext | None) -> None:
        host, port = parse_address(address)
        server = await asyncio.start_server(
            lambda r, w: self._accept(r, w, transport),
            host,
            port,
            ssl=context,
            ssl_handshake_timeout=10 if context else None,
            limit=READ_SIZE,
        )
        self._servers.append(server)
        self.addresses[transport] = server.sockets[0].getsockname()[:2]

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transport: str) -> None:
        task = asyncio.get_running_loop().create_task(self._stream(reader, writer, transport))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transport: str
    ) -> None:
        """Read one connection to its end, framing as it goes; frames already read are never lost."""
        peer = (writer.get_extra_info("peername") or ("unknown",))[0]
        framer = Framer(self.max_frame)
        clean = False
        try:
            while True:
                await self.intake.room()
                data = await reader.read(READ_SIZE)
                if not data:
                    clean = True
                    break
                self.intake.add(peer, transport, *framer.feed(data))
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            log.info("syslog: %s connection from %s ended: %s", transport, peer, exc)
        finally:
            self.intake.add(peer, transport, *framer.close(clean))
            writer.close()

    async def close(self) -> None:
        """Stop listening, finish open connections' frames, and wait until all is sealed."""
        for server in self._servers:
            server.close()
        if self._udp is not None:
            self._udp.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        await self.intake.close()


def tls_context(cert: str, key: str, client_ca: str | None = None) -> ssl.SSLContext:
    """A server context for RFC 5425 (TLS 1.2+); with client_ca, senders must show a certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if client_ca:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class SyslogThread:
    """A SyslogServer on its own thread and event loop, for use beside a server or in tests."""

    def __init__(
        self,
        trail: Trail,
        *,
        udp: Address | None = None,
        tcp: Address | None = None,
        tls: Address | None = None,
        ssl_context: ssl.SSLContext | None = None,
        **options: Any,
    ):
        self.trail, self.options = trail, options
        self.listen = {"udp": udp, "tcp": tcp, "tls": tls, "ssl_context": ssl_context}
        self.loop = asyncio.new_event_loop()
        self.server: SyslogServer | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, name="trailseal-syslog", daemon=True)

    def start(self, timeout: float = 10.0) -> SyslogThread:
        self.trail.sealer  # noqa: B018 - take the writer here, not in a race between threads
        self._thread.start()
        self.server = self._call(self._start(), timeout)
        return self

    async def _start(self) -> SyslogServer:
        return await SyslogServer(self.trail, **self.options).start(**self.listen)

    def _call(self, coroutine: Any, timeout: float | None) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    @property
    def addresses(self) -> dict[str, tuple[str, int]]:
        return self.server.addresses if self.server else {}

    @property
    def stats(self) -> Stats:
        assert self.server is not None
        return self.server.stats

    def drain(self, timeout: float | None = 30.0) -> None:
        """Block until every frame received so far is sealed."""
        assert self.server is not None
        self._call(self.server.intake.drain(), timeout)

    def stop(self, timeout: float | None = 30.0) -> None:
        if self.server is not None:
            self._call(self.server.close(), timeout)
            self.server = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        self.loop.close()

    def __enter__(self) -> SyslogThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def serve_syslog(
    trail: Trail,
    udp: Address | None = None,
    tcp: Address | None = None,
    tls: Address | None = None,
    *,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    tls_client_ca: str | None = None,
    **options: Any,
) -> SyslogServer:
    """Start listeners in the running loop; ``await server.close()`` drains them."""
    context = (
        tls_context(tls_cert, tls_key, tls_client_ca) if tls is not None and tls_cert and tls_key else None
    )
    return await SyslogServer(trail, **options).start(udp, tcp, tls, context)


def run_syslog(
    trail: Trail,
    udp: Address | None = None,
    tcp: Address | None = None,
    tls: Address | None = None,
    **options: Any,
) -> None:
    """Run listeners until SIGINT or SIGTERM, then seal what was received and return."""

    async def main() -> None:
        server = await serve_syslog(trail, udp, tcp, tls, **options)
        log.warning(
            "syslog listening on %s", ", ".join(f"{k} {h}:{p}" for k, (h, p) in server.addresses.items())
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.close()

    asyncio.run(main())
