"""Python client of the socket API: `GatewayClient` (asyncio) and `SyncGatewayClient`.

Requests are pipelined: each call gets its own integer id and any number may be outstanding.
Error replies raise ApiError with the server's code; a lost connection or a timeout raises
ApiError(E_CONNECTION, retriable=True). For sms.send, retrying after E_CONNECTION is safe only
with an idempotency_key (the first attempt may have been accepted).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl as ssl_module
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from gateway.api.errors import ApiError, ErrorCode
from gateway.api.framing import FrameReader, encode_frame

DEFAULT_SOCKET = "/run/gatewayd/api.sock"
CLIENT_FRAME_MAX = 16 * 1024 * 1024  # replies are not bound by the server's request limit
_END = object()


class Subscription:
    """Events pushed for one consumer, as an async iterator of event maps."""

    def __init__(self, client: GatewayClient, consumer: str, after: int) -> None:
        self.client = client
        self.consumer = consumer
        self.after = after  # the seq replay started after
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self

    async def __anext__(self) -> dict[str, Any]:
        item = await self.queue.get()
        if item is _END:
            self.queue.put_nowait(_END)
            raise self.client.closed_error()
        if isinstance(item, ApiError):
            raise item
        return item

    async def ack(self, seq: int) -> None:
        await self.client.ack(self.consumer, seq)


class GatewayClient:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        timeout: float | None = 30.0,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._subs: dict[str, Subscription] = {}
        self._fatal: ApiError | None = None
        self._closed = False
        self._task = asyncio.create_task(self._read_loop())

    @classmethod
    async def connect(
        cls,
        path: str | Path | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        token: str | None = None,
        ssl: ssl_module.SSLContext | None = None,
        timeout: float | None = 30.0,
    ) -> GatewayClient:
        """Connect to the Unix socket `path` (default /run/gatewayd/api.sock), or to TCP
        host:port, authenticating with `token`."""
        try:
            if host is not None:
                if port is None:
                    raise ValueError("port is required with host")
                opening = asyncio.open_connection(host, port, ssl=ssl)
            else:
                opening = asyncio.open_unix_connection(str(path or DEFAULT_SOCKET))
            reader, writer = await asyncio.wait_for(opening, timeout)
        except (OSError, TimeoutError) as exc:
            where = f"{host}:{port}" if host is not None else str(path or DEFAULT_SOCKET)
            raise ApiError(ErrorCode.E_CONNECTION, f"cannot connect to {where}: {exc}") from None
        client = cls(reader, writer, timeout=timeout)
        if token is not None:
            try:
                await client.call("auth", {"token": token})
            except ApiError:
                await client.close()
                raise
        return client

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def closed_error(self) -> ApiError:
        return self._fatal or ApiError(ErrorCode.E_CONNECTION, "connection closed")

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """One request; returns its result or raises ApiError."""
        if self._closed:
            raise self.closed_error()
        rid = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            self._writer.write(encode_frame({"id": rid, "method": method, "params": params or {}}))
            await self._writer.drain()
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that
            # races the reply, and the caller's task then never ends.
            async with asyncio.timeout(self.timeout):
                return await future
        except TimeoutError:
            raise ApiError(ErrorCode.E_CONNECTION, f"no reply to {method} in time") from None
        except OSError as exc:
            raise ApiError(ErrorCode.E_CONNECTION, f"connection lost: {exc}") from None
        finally:
            self._pending.pop(rid, None)

    async def send_sms(
        self,
        to: str,
        *,
        sender: str | None = None,
        sender_pool: str | None = None,
        text: str | None = None,
        binary: bytes | None = None,
        encoding: str | None = None,
        data_coding: int | None = None,
        validity: int | None = None,
        priority: int | None = None,
        idempotency_key: str | None = None,
        client_ref: str | None = None,
        traffic_class: str | None = None,
    ) -> dict[str, Any]:
        params = {
            "to": to,
            "from": sender,
            "sender_pool": sender_pool,
            "text": text,
            "binary": binary,
            "encoding": encoding,
            "data_coding": data_coding,
            "validity": validity,
            "priority": priority,
            "idempotency_key": idempotency_key,
            "client_ref": client_ref,
            "traffic_class": traffic_class,
        }
        return await self.call("sms.send", {k: v for k, v in params.items() if v is not None})

    async def get_sms(self, message_id: str) -> dict[str, Any]:
        return await self.call("sms.get", {"message_id": message_id})

    async def status(self) -> dict[str, Any]:
        return await self.call("status")

    async def read_events(
        self, consumer: str, after: int | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"consumer": consumer, "limit": limit}
        if after is not None:
            params["after"] = after
        return (await self.call("events.read", params))["events"]

    async def subscribe(
        self, consumer: str, after: int | None = None, window: int | None = None
    ) -> Subscription:
        """Replays events after the consumer's acked cursor (or `after`), then pushes new ones;
        ack them with `ack` or the subscription's own `ack`."""
        params: dict[str, Any] = {"consumer": consumer}
        if after is not None:
            params["after"] = after
        if window is not None:
            params["window"] = window
        # registered before the request: pushes can follow the reply in the same read
        sub = Subscription(self, consumer, -1)
        self._subs[consumer] = sub
        try:
            result = await self.call("events.subscribe", params)
        except ApiError:
            self._subs.pop(consumer, None)
            raise
        sub.after = result["after"]
        return sub

    async def ack(self, consumer: str, seq: int) -> None:
        await self.call("events.ack", {"consumer": consumer, "seq": seq})

    async def close(self) -> None:
        self._closed = True
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _read_loop(self) -> None:
        frames = FrameReader(CLIENT_FRAME_MAX)
        try:
            while not frames.broken:
                data = await self._reader.read(64 * 1024)
                if not data:
                    break
                for message in frames.feed(data):
                    self._dispatch(message)
        except (OSError, ssl_module.SSLError):
            pass
        finally:
            self._closed = True
            error = self.closed_error()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(error)
            for sub in self._subs.values():
                sub.queue.put_nowait(_END)

    def _dispatch(self, message: dict[str, Any] | ApiError) -> None:
        if isinstance(message, ApiError):
            self._fatal = message
            return
        if "id" in message:
            future = self._pending.get(message["id"])
            if "error" in message:
                error = ApiError.from_wire(message["error"])
                if future is None:
                    self._fatal = error  # the server's word before it closes (refused peer...)
                elif not future.done():
                    future.set_exception(error)
            elif future is not None and not future.done():
                future.set_result(message.get("result"))
            return
        sub = self._subs.get(message.get("consumer"))  # type: ignore[arg-type]
        if sub is None:
            return
        if "event" in message:
            sub.queue.put_nowait(message["event"])
        elif "error" in message:
            sub.queue.put_nowait(ApiError.from_wire(message["error"]))


class SyncGatewayClient:
    """Blocking wrapper: one private event loop, each call runs it until the reply."""

    def __init__(self, path: str | Path | None = None, **connect: Any) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._client = self._loop.run_until_complete(GatewayClient.connect(path, **connect))
        except BaseException:
            self._loop.close()
            raise

    def __enter__(self) -> SyncGatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, coro: Any) -> Any:
        return self._loop.run_until_complete(coro)

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return self._run(self._client.call(method, params))

    def send_sms(self, to: str, **kwargs: Any) -> dict[str, Any]:
        return self._run(self._client.send_sms(to, **kwargs))

    def get_sms(self, message_id: str) -> dict[str, Any]:
        return self._run(self._client.get_sms(message_id))

    def status(self) -> dict[str, Any]:
        return self._run(self._client.status())

    def read_events(
        self, consumer: str, after: int | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        return self._run(self._client.read_events(consumer, after, limit))

    def ack(self, consumer: str, seq: int) -> None:
        self._run(self._client.ack(consumer, seq))

    def events(self, consumer: str, after: int | None = None) -> Iterator[dict[str, Any]]:
        """Subscribe and yield events as they come (blocking); ack them with `ack`."""
        sub: Subscription = self._run(self._client.subscribe(consumer, after))
        while True:
            yield self._run(sub.__anext__())

    def close(self) -> None:
        if not self._loop.is_closed():
            self._run(self._client.close())
            self._loop.close()
