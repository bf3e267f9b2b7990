"""What the API server needs from the daemon: `GatewayService`.

The server validates and frames; the service decides. A method either returns a msgpack-able
map or raises ApiError (E_QUEUE_FULL when the queue is over its limit, E_NOT_FOUND, ...); any
other exception becomes E_INTERNAL and is logged.

Events form one ordered log with sequence numbers that are never reused. Each named consumer has
a durable cursor: the highest seq it acked. Events after the cursor are replayed on every
subscribe, so a consumer that disconnects misses nothing; only `ack_events` moves the cursor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from gateway.api.schema import SendRequest

#: how a service may answer sms.send without a future: (error, None) or (None, reply)
Reply = Callable[[BaseException | None, "dict[str, Any] | None"], None]


class GatewayService(Protocol):
    def send_sms(self, req: SendRequest, client: str) -> Awaitable[dict[str, Any]]:
        """Accept (durably) one message. Result: at least {"message_id": str}.

        A coroutine function, or (as GatewayCore does, to spare the server a task per request)
        a function returning an asyncio.Future; it may raise ApiError at once.

        `client` names the caller ("uid:1000", "tcp:10.0.0.5") for the store's client_id.
        The same idempotency_key from the same client returns the first message_id with
        "duplicate": True.

        A service may also offer ``send_sms_then(req, client, then: Reply)``, the same with a
        callback instead of a future; the server then uses it (GatewayCore does).
        """
        ...

    async def get_sms(self, message_id: str) -> dict[str, Any] | None:
        """State and history of one message, or None if unknown (E_NOT_FOUND)."""
        ...

    async def status(self) -> dict[str, Any]: ...

    async def read_events(self, consumer: str, after_seq: int, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` events with seq > after_seq, in order; each has at least "seq"."""
        ...

    async def cursor(self, consumer: str) -> int:
        """The consumer's acked seq (0 for a consumer never seen)."""
        ...

    async def ack_events(self, consumer: str, seq: int) -> None:
        """Move the cursor forward to seq (never backwards); ApiError(E_BAD_PARAMS) if seq was
        never appended."""
        ...

    async def wait_for_events(self, after_seq: int) -> None:
        """Return once an event with seq > after_seq may exist (early returns are allowed; the
        server reads again). Taking the seq makes it free of lost wake-ups."""
        ...
