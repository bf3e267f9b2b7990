"""The asyncio adapter around EsmeSession: one TCP (or TLS) connection, one timer.

    conn = await connect_esme(host, port, SessionConfig(...), on_event)
    await conn.wait_bound()
    if not conn.submit(pdu, ref): ...      # window full: keep it queued, retry on an event
    ...
    await conn.unbind()

``on_event`` is called synchronously for every session event, in order; it may call
``submit``, ``ack`` or ``close`` from inside. All protocol decisions are the session's.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import Callable
from typing import Any

from gateway.smpp.constants import CommandStatus
from gateway.smpp.pdu import Pdu
from gateway.smpp.session import (
    BindFailed,
    Bound,
    EsmeSession,
    Event,
    SessionConfig,
    Unbound,
)


class BindError(ConnectionError):
    """The bind did not come up: ``event`` is the BindFailed or Unbound that ended it."""

    def __init__(self, event: BindFailed | Unbound) -> None:
        self.event = event
        if isinstance(event, BindFailed):
            try:
                detail = CommandStatus(event.command_status).name
            except ValueError:
                detail = hex(event.command_status)
        else:
            detail = event.reason.value
        super().__init__(f"bind failed: {detail}")


class EsmeConnection(asyncio.Protocol):
    def __init__(self, config: SessionConfig, on_event: Callable[[Event], None]) -> None:
        self.session = EsmeSession(config)
        self._events = self.session.event_queue  # popleft() is session.next_event()
        self._on_event = on_event
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._pumping = False
        self._flush_scheduled = False
        self._bound: asyncio.Future[Bound] = self._loop.create_future()
        self._closed: asyncio.Future[None] = self._loop.create_future()

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport
        self.session.start(self._loop.time())
        self._pump()

    def data_received(self, data: bytes) -> None:
        self.session.receive_data(data, self._loop.time())
        self._pump()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self.session.connection_lost(self._loop.time())
        self._pump()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._closed.done():
            self._closed.set_result(None)

    # -- API ---------------------------------------------------------------------------------

    def submit(self, pdu: Pdu, ref: Any) -> bool:
        """False when the window is full or the bind is not up (nothing was sent)."""
        now = self._loop.time()
        session = self.session
        if not session.submit(pdu, ref, now):
            return False
        if not self._pumping:  # from inside on_event the running pump takes care of it
            # What _pump would do after a submit, which raises no event: flush at the end of
            # the iteration, and a timer no later than the one deadline the submit added.
            if not self._flush_scheduled:
                self._schedule_flush()
            armed = self._timer_at
            if armed is None or now + session.config.response_timeout < armed:
                self._arm_timer(session.next_deadline())
        return True

    def ack(self, pdu: Pdu, status: int = 0) -> bool:
        if not self.session.ack(pdu, status):
            return False
        if not self._pumping and not self._flush_scheduled:  # an ack raises no event
            self._schedule_flush()
        return True

    @property
    def window_free(self) -> int:
        return self.session.window_free

    async def wait_bound(self) -> str:
        """The SMSC's system_id once bound; raises BindError when the bind fails or ends."""
        return (await asyncio.shield(self._bound)).system_id

    async def unbind(self, timeout: float | None = None) -> None:
        """Unbind gracefully and wait until the connection is closed."""
        self.session.unbind(self._loop.time())
        self._pump()
        await self.wait_closed(timeout)

    async def wait_closed(self, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            await asyncio.shield(self._closed)

    def close(self) -> None:
        """Drop the connection now; Unbound(CONNECTION_LOST) reports the outstanding refs."""
        if self._transport is not None:
            self._transport.abort()

    # -- internals ---------------------------------------------------------------------------

    def _pump(self) -> None:
        # Re-entrant calls (on_event calling submit/ack) leave the work to the outer loop.
        if self._pumping:
            return
        self._pumping = True
        try:
            session = self.session
            events = self._events
            if events:
                bound, on_event = self._bound, self._on_event
                while events:
                    event = events.popleft()
                    if not bound.done():
                        self._track(event)
                    on_event(event)
            if not self._flush_scheduled and (session.has_output or session.closed):
                self._schedule_flush()
            deadline = session.next_deadline()
            # _arm_timer's own test, here to skip the call when the armed timer stays
            if deadline is not None and (self._timer_at is None or deadline < self._timer_at):
                self._arm_timer(deadline)
        finally:
            self._pumping = False

    def _schedule_flush(self) -> None:
        # Everything the session has to send by the end of this loop iteration goes out in one
        # write (one syscall) instead of one per PDU.
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        data = self.session.data_to_send()
        if self._transport is None:
            return
        if data:
            self._transport.write(data)
        if self.session.closed:
            self._transport.close()  # after flushing unbind_resp or generic_nack

    def _track(self, event: Event) -> None:
        if self._bound.done():
            return
        if isinstance(event, Bound):
            self._bound.set_result(event)
        elif isinstance(event, BindFailed | Unbound):
            self._bound.set_exception(BindError(event))
            self._bound.exception()  # retrieved: no "never retrieved" warning if unawaited

    def _arm_timer(self, deadline: float | None) -> None:
        # A timer already due at or before the deadline stays: firing early is harmless (the
        # session handles what is due and the pump arms the next one), and re-arming on every
        # PDU as the oldest response deadline moves would cost a timer handle each time.
        armed = self._timer_at
        if armed is not None and (deadline is None or armed <= deadline):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        # The loop may run a timer up to its clock resolution early; it is due all the same.
        due = self._timer_at or 0.0
        self._timer = None
        self._timer_at = None
        self.session.handle_timer(max(self._loop.time(), due))
        self._pump()


async def connect_esme(
    host: str,
    port: int,
    config: SessionConfig,
    on_event: Callable[[Event], None],
    *,
    ssl: ssl_module.SSLContext | None = None,
    connect_timeout: float = 10.0,
) -> EsmeConnection:
    """Connect and send the bind; await ``wait_bound()`` on the result for its outcome."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(connect_timeout):
        _, protocol = await loop.create_connection(
            lambda: EsmeConnection(config, on_event), host, port, ssl=ssl
        )
    return protocol
