"""The asyncio adapter around SmscCore: sockets, timers and the async API used by tests.

async with SmscSimulator(SimConfig(port=0)) as sim:
    ...  # connect an ESME to sim.host, sim.port
    await sim.inject_mo("hello", system_id="smppclient1")
    await sim.wait_for(lambda: sim.counters.mo_sent == 1)

With ``server.tls_cert``/``server.tls_key`` set the port is TLS-only: a connection becomes an
ESME link (and reaches the core) only once its handshake is done; a failed handshake, e.g. a
plain-TCP client, is closed by asyncio and never seen by the core.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from gateway.smpp.codec import encode_pdu
from gateway.smpp.pdu import DeliverSm, Pdu
from gateway.smpp.text import DEFAULT_ALLOWED

from .config import SimConfig, tls_context
from .core import Action, BindRecord, Close, Peer, Send, SmscCore
from .counters import Counters


class _Link(asyncio.Protocol):
    """One ESME connection; forwards everything to the simulator."""

    def __init__(self, sim: SmscSimulator) -> None:
        self._sim = sim
        self.conn_id = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport
        self.conn_id = self._sim._opened(self, _peer(transport.get_extra_info("peername")))

    def data_received(self, data: bytes) -> None:
        self._sim._received(self.conn_id, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._sim._lost(self.conn_id)

    # A peer that does not read must not make us buffer without bound: stop reading from it.
    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()


class SmscSimulator:
    """An SMPP 3.4 SMSC on asyncio. Use as ``async with`` or call start()/stop()."""

    def __init__(self, config: SimConfig | None = None, **changes: Any) -> None:
        config = config or SimConfig()
        self.config = config.replace(**changes) if changes else config
        self._core: SmscCore | None = None
        self._server: asyncio.Server | None = None
        self._links: dict[int, _Link] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen; raises ConfigError for a bad setting (TLS files included), OSError when the
        address cannot be bound."""
        loop = self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        core = SmscCore(self.config, loop.time())
        ssl = tls_context(self.config)
        self._core = core
        self._server = await loop.create_server(
            lambda: _Link(self), self.config.host, self.config.port, reuse_address=True, ssl=ssl
        )
        self._pump()

    async def stop(self, graceful: float = 0.0) -> None:
        """Stop listening and close every connection. With graceful > 0, first send unbind
        on every bound connection and wait up to that many seconds for them to close."""
        if self._server is None:
            return
        self._server.close()
        if graceful > 0 and self._links:
            self._execute(self.core.unbind_all(self._now()))
            with contextlib.suppress(TimeoutError):
                await self.wait_for(lambda: not self._links, timeout=graceful)
        for link in list(self._links.values()):
            if link.transport is not None:
                link.transport.abort()
        await self._server.wait_closed()
        self._server = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def __aenter__(self) -> SmscSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- public API --------------------------------------------------------------------------

    @property
    def core(self) -> SmscCore:
        if self._core is None:
            raise RuntimeError("the simulator is not started")
        return self._core

    @property
    def host(self) -> str:
        return self.config.host

    @property
    def tls(self) -> bool:
        """Whether the port is TLS-only (server.tls_cert and server.tls_key are set)."""
        return self.config.tls_cert is not None

    @property
    def port(self) -> int:
        """The listening port (the real one when configured with port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the simulator is not listening")
        return self._server.sockets[0].getsockname()[1]

    @property
    def counters(self) -> Counters:
        return self.core.counters

    @property
    def submitted(self) -> deque[Pdu]:
        """The decoded submit_sm / data_sm / submit_multi PDUs accepted, the latest
        ``config.keep_submitted`` of them."""
        return self.core.submitted

    @property
    def binds(self) -> deque[BindRecord]:
        """The binds accepted, the latest ``core.BIND_MEMORY`` of them, each with the ESME's
        (host, port) as this end of its connection saw it."""
        return self.core.binds

    @property
    def seed(self) -> int:
        return self.core.seed

    @property
    def connections(self) -> int:
        return len(self._links)

    async def inject_mo(
        self,
        text: str,
        *,
        system_id: str | None = None,
        source_addr: str = "447700900123",
        destination_addr: str = "12345",
        segmentation: str = "udh8",
        encodings: Sequence[int] = DEFAULT_ALLOWED,
    ) -> list[DeliverSm]:
        """Send an MO message (deliver_sm, esm_class 0; several parts when long) to a receiver
        bind of system_id, or of every account when None. Parts wait in the delivery queue
        while no receiver bind is up. Returns the PDUs of the message."""
        parts = self.core.inject_mo(
            text,
            self._now(),
            system_id=system_id,
            source_addr=source_addr,
            destination_addr=destination_addr,
            segmentation=segmentation,
            encodings=encodings,
        )
        self._pump()
        return parts

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until predicate() holds, checking after every simulator event; raises
        TimeoutError after timeout seconds."""
        assert self._changed is not None
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    # -- events ------------------------------------------------------------------------------

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _opened(self, link: _Link, peer: Peer | None) -> int:
        conn_id = self.core.open(self._now(), peer)
        self._links[conn_id] = link
        self._pump()
        return conn_id

    def _received(self, conn_id: int, data: bytes) -> None:
        self._execute(self.core.receive(conn_id, data, self._now()))
        self._pump()

    def _lost(self, conn_id: int) -> None:
        self._links.pop(conn_id, None)
        if self._core is not None:
            self._core.lost(conn_id, self._now())
            self._pump()

    def _on_timer(self) -> None:
        # The loop may run a timer up to its clock resolution early; it is due all the same.
        due = self._timer_at or 0.0
        self._timer = None
        self._timer_at = None
        self._pump(max(self._now(), due))

    def _pump(self, now: float | None = None) -> None:
        """Run what is due, re-arm the timer, and wake wait_for()."""
        core = self.core
        self._execute(core.poll(self._now() if now is None else now))
        deadline = core.next_deadline()
        if deadline != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = None
            if deadline is not None:
                assert self._loop is not None
                self._timer = self._loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline
        if self._changed is not None:
            self._changed.set()

    def _execute(self, actions: list[Action]) -> None:
        """Write the sends, one write per connection and send time, then close."""
        now = self._now()
        groups: dict[tuple[int, float], list[Send]] = {}
        closes: list[Close] = []
        for action in actions:
            if isinstance(action, Send):
                at = action.at if action.at > now else 0.0
                groups.setdefault((action.conn_id, at), []).append(action)
            else:
                closes.append(action)
        for (conn_id, at), sends in groups.items():
            if at:
                assert self._loop is not None
                self._loop.call_at(at, self._write, conn_id, sends)
            else:
                self._write(conn_id, sends)
        for close in closes:
            self._close(close.conn_id, close.abort)

    def _write(self, conn_id: int, sends: list[Send]) -> None:
        link = self._links.get(conn_id)
        if link is None or link.transport is None or link.transport.is_closing():
            return
        link.transport.write(b"".join([encode_pdu(send.pdu) for send in sends]))
        if sends[-1].close_after:
            link.transport.close()

    def _close(self, conn_id: int, abort: bool) -> None:
        link = self._links.get(conn_id)
        if link is not None and link.transport is not None:
            if abort:
                link.transport.abort()
            else:
                link.transport.close()


def _peer(peername: Any) -> Peer | None:
    """(host, port) of a TCP peer name (IPv6 ones have two more fields); None otherwise."""
    if isinstance(peername, tuple) and len(peername) >= 2:
        return (str(peername[0]), int(peername[1]))
    return None
