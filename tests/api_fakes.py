"""A fake GatewayService over the real ApiServer, and raw-socket helpers, for the API tests."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any

from gateway.api.errors import ApiError, ErrorCode
from gateway.api.framing import HEADER, FrameReader, encode_frame
from gateway.api.schema import SendRequest
from gateway.api.server import ApiServer

TIMEOUT = 10.0


class FakeService:
    """GatewayService in memory. client_ref "gated" waits for `gate`; "boom" raises."""

    def __init__(self) -> None:
        self.messages: dict[str, dict[str, Any]] = {}
        self.keys: dict[tuple[str, str], str] = {}
        self.events: list[dict[str, Any]] = []
        self.cursors: dict[str, int] = {}
        self.queue_full = False
        self.gate = asyncio.Event()
        self._appended = asyncio.Event()

    async def send_sms(self, req: SendRequest, client: str) -> dict[str, Any]:
        if req.client_ref == "gated":
            await self.gate.wait()
        if req.client_ref == "boom":
            raise RuntimeError("boom")
        if self.queue_full:
            raise ApiError(ErrorCode.E_QUEUE_FULL, "the queue is over its limit of 1")
        if req.idempotency_key and (client, req.idempotency_key) in self.keys:
            return {"message_id": self.keys[client, req.idempotency_key], "duplicate": True}
        message_id = f"m{len(self.messages) + 1}"
        self.messages[message_id] = {
            "message_id": message_id,
            "state": "accepted",
            "to": req.to,
            "from": req.sender,
            "history": [{"seq": 1, "event": "accepted", "detail": {"client": client}}],
        }
        if req.idempotency_key:
            self.keys[client, req.idempotency_key] = message_id
        return {"message_id": message_id, "duplicate": False}

    async def get_sms(self, message_id: str) -> dict[str, Any] | None:
        return self.messages.get(message_id)

    async def status(self) -> dict[str, Any]:
        return {"version": "test", "queue": {"depth": len(self.messages), "limit": 10}}

    async def read_events(self, consumer: str, after_seq: int, limit: int) -> list[dict[str, Any]]:
        return [e for e in self.events if e["seq"] > after_seq][:limit]

    async def cursor(self, consumer: str) -> int:
        return self.cursors.get(consumer, 0)

    async def ack_events(self, consumer: str, seq: int) -> None:
        if seq > len(self.events):
            raise ApiError(ErrorCode.E_BAD_PARAMS, f"seq: {seq} was never appended")
        self.cursors[consumer] = max(seq, self.cursors.get(consumer, 0))

    async def wait_for_events(self, after_seq: int) -> None:
        while len(self.events) <= after_seq:
            await self._appended.wait()

    def append(self, kind: str, **body: Any) -> int:
        seq = len(self.events) + 1
        self.events.append({"seq": seq, "kind": kind, "at": "2026-01-01T00:00:00Z", **body})
        self._appended.set()
        self._appended = asyncio.Event()
        return seq


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


@contextlib.contextmanager
def short_tmpdir() -> Iterator[Path]:
    # sun_path is 108 octets; pytest's tmp_path can be longer
    path = Path(tempfile.mkdtemp(prefix="gwapi", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.asynccontextmanager
async def serving(**kwargs: Any) -> AsyncIterator[tuple[ApiServer, FakeService, Path]]:
    service = FakeService()
    mode = kwargs.pop("mode", 0o660)
    server = ApiServer(service, **kwargs)
    with short_tmpdir() as tmp:
        path = tmp / "api.sock"
        await server.start_unix(path, mode)
        try:
            yield server, service, path
        finally:
            await server.close()


class ThreadedServer:
    """The server on its own loop in a thread, for blocking clients and subprocesses."""

    def __init__(self) -> None:
        self._tmp = short_tmpdir()
        self.path = self._tmp.__enter__() / "api.sock"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.service: FakeService = self.call(self._start())

    async def _start(self) -> FakeService:
        service = FakeService()
        self.server = ApiServer(service)
        await self.server.start_unix(self.path)
        return service

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT)

    def do(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        async def inner() -> Any:
            return fn(*args, **kwargs)

        return self.call(inner())

    def close(self) -> None:
        self.call(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.loop.close()
        self._tmp.__exit__(None, None, None)


class Raw:
    """A raw frame-level connection, for what the client library would never send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.frames = FrameReader(1 << 24)
        self.inbox: list[Any] = []

    @classmethod
    async def unix(cls, path: Path) -> Raw:
        return cls(*await asyncio.open_unix_connection(str(path)))

    async def send(self, message: Any) -> None:
        self.writer.write(encode_frame(message))
        await self.writer.drain()

    async def send_body(self, body: bytes) -> None:
        self.writer.write(HEADER.pack(len(body)) + body)
        await self.writer.drain()

    async def recv(self) -> dict[str, Any] | None:
        """The next message, or None at EOF."""
        while not self.inbox:
            data = await asyncio.wait_for(self.reader.read(65536), TIMEOUT)
            if not data:
                return None
            self.inbox.extend(self.frames.feed(data))
        return self.inbox.pop(0)

    async def call(self, rid: Any, method: str, params: dict[str, Any] | None = None) -> Any:
        await self.send({"id": rid, "method": method, "params": params or {}})
        return await self.recv()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
