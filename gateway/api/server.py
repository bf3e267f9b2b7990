"""The asyncio API server: a Unix socket (peer uid/gid checked) and an optional TCP listener.

Access on the Unix socket: the socket file gets the configured mode, and every peer's
credentials (SO_PEERCRED) are checked: its uid must be the daemon's own, or in allowed_uids, or
its gid (the peer process's effective gid; supplementary groups are not visible) in
allowed_gids. Root gets no exception: list 0 in allowed_uids if operators use sudo. A refused
peer gets one E_UNAUTHORIZED reply (id nil) and is disconnected.

On TCP the first request must be `auth {token}`; anything else, or a wrong token, gets
E_UNAUTHORIZED and the connection is closed. TLS is used when an SSLContext is given.

Each connection handles up to `max_in_flight` requests concurrently; when they are all busy the
server stops reading from that peer. Replies and pushes wait for the transport's write buffer
to drain below its high-water mark, so a peer that does not read stalls only itself.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import hmac
import logging
import os
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.api import schema
from gateway.api.errors import ApiError, ErrorCode
from gateway.api.framing import FrameReader, Message, encode_frame
from gateway.api.service import GatewayService
from gateway.ops.config import Api, Limits
from gateway.running_loop import running_loop

log = logging.getLogger("gateway.api")

MAX_IN_FLIGHT = 64
WRITE_HIGH_WATER = 256 * 1024
READ_CHUNK = 64 * 1024
PUSH_BATCH = 100
MAX_SUBSCRIPTIONS = 32  # per connection
AUTH_TIMEOUT_S = 10.0  # a TCP peer that has not authenticated by then is disconnected
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    uids: frozenset[int]
    gids: frozenset[int] = frozenset()

    def allows(self, uid: int, gid: int) -> bool:
        return uid in self.uids or gid in self.gids

    @classmethod
    def from_config(
        cls, allowed_uids: tuple[int, ...], allowed_gids: tuple[int, ...]
    ) -> AccessPolicy:
        return cls(frozenset({os.geteuid(), *allowed_uids}), frozenset(allowed_gids))


def tls_context(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def peer_credentials(sock: Any) -> tuple[int, int, int]:
    """(pid, uid, gid) of a Unix socket's peer."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    pid, uid, gid = _PEERCRED.unpack(raw)
    return pid, uid, gid


class _Closed(Exception):
    """The connection is to be closed after the reply already sent."""


@dataclass(eq=False)
class _Subscription:
    consumer: str
    after: int | None
    window: int
    unacked: collections.deque[int] = field(default_factory=collections.deque)
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class _Connection:
    def __init__(
        self,
        server: ApiServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client: str,
        authenticated: bool,
    ) -> None:
        self.server = server
        self.service = server.service
        # the service's callback form of sms.send, when it has one (GatewayCore does)
        self._send_then = getattr(self.service, "send_sms_then", None)
        self.reader = reader
        self.writer = writer
        # The writer's transport, used directly on the hot path (StreamWriter.is_closing and
        # write only forward to it); the server never swaps it (no start_tls).
        self.transport = writer.transport
        self.client = client
        self.authenticated = authenticated
        self.frames = FrameReader(server.frame_max_bytes)
        self.in_flight = 0  # requests being handled; reading pauses at server.max_in_flight
        self.slot_freed = asyncio.Event()
        self.waiting_for_slot = False  # reading is paused on slot_freed
        self.tasks: set[asyncio.Task[None]] = set()
        self.subs: dict[str, _Subscription] = {}
        self.out: list[bytes] = []  # frames to write at the end of this loop iteration
        self.out_bytes = 0
        self.flush_scheduled = False
        self.handlers: dict[str, Callable[[schema.Request], Awaitable[Any]]] = {
            "auth": self._auth,
            "sms.get": self._get,
            "status": self._status,
            "events.subscribe": self._subscribe,
            "events.unsubscribe": self._unsubscribe,
            "events.ack": self._ack,
            "events.read": self._read,
        }

    # ---------------------------------------------------------------- output

    def send(self, message: Message) -> None:
        """Queue one frame; the frames of a loop iteration leave in one write (one syscall).
        Frames are whole, so nothing interleaves; backpressure is `write`'s and the reader's."""
        if self.transport.is_closing():
            raise ConnectionResetError("connection closing")
        try:
            frame = encode_frame(message)
        except (TypeError, ValueError, OverflowError) as exc:
            log.error("unencodable message for %s: %s", self.client, exc)
            if "id" not in message:
                return
            error = ApiError(ErrorCode.E_INTERNAL, "reply could not be encoded")
            frame = encode_frame({"id": message["id"], "error": error.to_wire()})
        self.out.append(frame)
        self.out_bytes += len(frame)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        if self.out and not self.transport.is_closing():
            self.transport.write(b"".join(self.out))
        self.out.clear()
        self.out_bytes = 0

    def backlog(self) -> int:
        return self.out_bytes + self.writer.transport.get_write_buffer_size()

    async def write(self, message: Message) -> None:
        """`send`, then wait while the peer is not reading (the write buffer is above its
        high-water mark)."""
        self.send(message)
        if self.backlog() > WRITE_HIGH_WATER:
            self.flush()
            await self.writer.drain()

    async def reply_error(self, rid: Any, error: ApiError) -> None:
        await self.write({"id": rid, "error": error.to_wire()})

    # ---------------------------------------------------------------- input

    async def run(self) -> None:
        deadline = asyncio.get_running_loop().time() + self.server.auth_timeout
        try:
            while True:
                if self.authenticated:
                    data = await self.reader.read(READ_CHUNK)
                else:
                    async with asyncio.timeout_at(deadline):
                        data = await self.reader.read(READ_CHUNK)
                if not data:
                    return
                for item in self.frames.feed(data):
                    if not self.sms_send_now(item):
                        await self.on_frame(item)
                if self.backlog() > WRITE_HIGH_WATER:  # a peer that does not read its replies
                    self.flush()
                    await self.writer.drain()
        except _Closed:
            pass
        except TimeoutError:
            error = ApiError(ErrorCode.E_UNAUTHORIZED, "no auth request in time")
            with contextlib.suppress(ConnectionError):
                await self.reply_error(None, error)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
            log.debug("connection %s lost: %s", self.client, exc)
        finally:
            await self.close()

    def sms_send_now(self, item: Message | ApiError) -> bool:
        """`on_frame` for a well-formed sms.send with a slot free (the hot path), without a
        coroutine per frame; False for anything else, left to `on_frame`."""
        if type(item) is not dict or not self.authenticated:
            return False
        if self.in_flight >= self.server.max_in_flight:
            return False
        try:
            request = schema.parse_request(item)
        except ApiError:
            return False  # on_frame parses it again and words the error
        if request.method != "sms.send":
            return False
        self.in_flight += 1
        self.send_sms(request)
        return True

    async def on_frame(self, item: Message | ApiError) -> None:
        if isinstance(item, ApiError):
            await self.reply_error(None, item)
            if item.code == ErrorCode.E_FRAME_TOO_LARGE or not self.authenticated:
                raise _Closed
            return
        try:
            request = schema.parse_request(item)
        except ApiError as exc:
            rid = item.get("id")
            await self.reply_error(rid if schema.request_id_ok(rid) else None, exc)
            if not self.authenticated:
                raise _Closed from None
            return
        if not self.authenticated:
            await self.authenticate(request)
            return
        while self.in_flight >= self.server.max_in_flight:
            self.slot_freed.clear()
            self.waiting_for_slot = True
            try:
                await self.slot_freed.wait()
            finally:
                self.waiting_for_slot = False
        self.in_flight += 1
        if request.method == "sms.send":
            self.send_sms(request)
            return
        task = asyncio.create_task(self.handle(request))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def release(self) -> None:
        self.in_flight -= 1
        if self.waiting_for_slot:  # otherwise nobody waits: the waiter clears it before waiting
            self.slot_freed.set()

    def send_sms(self, request: schema.Request) -> None:
        """The hot path: no task, and no future when the service answers through a callback
        (GatewayCore's send_sms_then)."""
        try:
            req = schema.parse_send(request.params)
            if self._send_then is not None:
                self._send_then(req, self.client, functools.partial(self._answered, request))
                return
            pending = self.service.send_sms(req, self.client)
        except Exception as exc:
            self.release()
            self._reply_failure(request, exc)
            return
        if not isinstance(pending, asyncio.Future):  # a coroutine: the general path
            task = asyncio.create_task(self.handle(request, pending))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return

        def answered(future: asyncio.Future[Any]) -> None:
            if future.cancelled():
                self._answered(request, ApiError(ErrorCode.E_INTERNAL, "cancelled"), None)
            elif (exc := future.exception()) is not None:
                self._answered(request, exc, None)
            else:
                self._answered(request, None, future.result())

        pending.add_done_callback(answered)

    def _answered(self, request: schema.Request, error: BaseException | None, result: Any) -> None:
        self.in_flight -= 1  # release(), inline on the hot path
        if self.waiting_for_slot:
            self.slot_freed.set()
        if error is not None:
            self._reply_failure(request, error)
            return
        # Not contextlib.suppress: that is three Python calls per reply on the hot path.
        try:  # noqa: SIM105
            self.send({"id": request.id, "result": result})
        except ConnectionError:
            pass

    def _reply_failure(self, request: schema.Request, exc: BaseException) -> None:
        if not isinstance(exc, ApiError):
            log.error("%s failed for %s", request.method, self.client, exc_info=exc)
            exc = ApiError(ErrorCode.E_INTERNAL, "internal error")
        with contextlib.suppress(ConnectionError):
            self.send({"id": request.id, "error": exc.to_wire()})

    async def authenticate(self, request: schema.Request) -> None:
        token = self.server.token
        if request.method != "auth":
            await self.reply_error(request.id, ApiError(ErrorCode.E_UNAUTHORIZED, "auth first"))
            raise _Closed
        try:
            given = schema.parse_auth(request.params).token
        except ApiError as exc:
            await self.reply_error(request.id, exc)
            raise _Closed from None
        if token is None or not hmac.compare_digest(given.encode(), token.encode()):
            await self.reply_error(request.id, ApiError(ErrorCode.E_UNAUTHORIZED, "wrong token"))
            raise _Closed
        self.authenticated = True
        await self.write({"id": request.id, "result": {"authenticated": True}})

    async def handle(self, request: schema.Request, pending: Awaitable[Any] | None = None) -> None:
        try:
            if pending is not None:
                result = await pending
            else:
                handler = self.handlers.get(request.method)
                if handler is None:
                    message = f"unknown method {request.method!r:.80}"
                    raise ApiError(ErrorCode.E_UNKNOWN_METHOD, message)
                result = await handler(request)
            if result is not _REPLIED:
                await self.write({"id": request.id, "result": result})
        except ConnectionError:
            pass  # the peer is gone; run() closes the connection
        except Exception as exc:  # ApiError: its reply; anything else: logged, E_INTERNAL
            self._reply_failure(request, exc)
        finally:
            self.release()

    async def close(self) -> None:
        for task in [*self.tasks, *(s.task for s in self.subs.values() if s.task)]:
            task.cancel()
        self.flush()  # a last reply (an error before closing) must not stay queued
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()

    # ---------------------------------------------------------------- methods

    async def _auth(self, request: schema.Request) -> Any:
        schema.parse_auth(request.params)  # already authenticated (peer credentials or token)
        return {"authenticated": True}

    async def _get(self, request: schema.Request) -> Any:
        message_id = schema.parse_get(request.params).message_id
        found = await self.service.get_sms(message_id)
        if found is None:
            raise ApiError(ErrorCode.E_NOT_FOUND, f"no message {message_id!r:.80}")
        return found

    async def _status(self, request: schema.Request) -> Any:
        schema.parse_empty(request.params)
        return await self.service.status()

    async def _read(self, request: schema.Request) -> Any:
        req = schema.parse_read(request.params)
        after = await self.service.cursor(req.consumer) if req.after is None else req.after
        return {"events": await self.service.read_events(req.consumer, after, req.limit)}

    async def _subscribe(self, request: schema.Request) -> Any:
        req = schema.parse_subscribe(request.params)
        if req.consumer in self.subs:
            raise ApiError(ErrorCode.E_BAD_PARAMS, f"consumer: {req.consumer} already subscribed")
        if len(self.subs) >= MAX_SUBSCRIPTIONS:
            message = f"consumer: at most {MAX_SUBSCRIPTIONS} subscriptions per connection"
            raise ApiError(ErrorCode.E_BAD_PARAMS, message)
        sub = _Subscription(req.consumer, req.after, req.window)
        self.subs[req.consumer] = sub
        start = await self.service.cursor(req.consumer) if req.after is None else req.after
        await self.write({"id": request.id, "result": {"consumer": req.consumer, "after": start}})
        sub.task = asyncio.create_task(self._pump(sub, start))
        return _REPLIED

    async def _unsubscribe(self, request: schema.Request) -> Any:
        consumer = schema.parse_consumer(request.params).consumer
        sub = self.subs.pop(consumer, None)
        if sub is None:
            raise ApiError(ErrorCode.E_NOT_FOUND, f"consumer: {consumer} is not subscribed")
        if sub.task:
            sub.task.cancel()
        return {"consumer": consumer}

    async def _ack(self, request: schema.Request) -> Any:
        req = schema.parse_ack(request.params)
        await self.service.ack_events(req.consumer, req.seq)
        sub = self.subs.get(req.consumer)
        if sub is not None:
            while sub.unacked and sub.unacked[0] <= req.seq:
                sub.unacked.popleft()
            sub.acked.set()
        return {"consumer": req.consumer, "acked": req.seq}

    async def _pump(self, sub: _Subscription, position: int) -> None:
        """Replay from `position`, then push new events, keeping at most `window` unacked."""
        try:
            while True:
                while len(sub.unacked) >= sub.window:
                    sub.acked.clear()
                    await sub.acked.wait()
                limit = min(sub.window - len(sub.unacked), PUSH_BATCH)
                events = await self.service.read_events(sub.consumer, position, limit)
                if not events:
                    await self.service.wait_for_events(position)
                    continue
                # Framed in one go (no coroutine per event); the peer's backpressure is checked
                # once per batch, which PUSH_BATCH bounds.
                consumer, send, unacked = sub.consumer, self.send, sub.unacked
                for event in events:
                    send({"consumer": consumer, "event": event})
                    unacked.append(event["seq"])
                position = events[-1]["seq"]
                if self.backlog() > WRITE_HIGH_WATER:
                    self.flush()
                    await self.writer.drain()
        except ConnectionError:
            pass
        except Exception as exc:
            log.exception("event pump for %s failed", sub.consumer)
            self.subs.pop(sub.consumer, None)
            error = exc if isinstance(exc, ApiError) else ApiError(ErrorCode.E_INTERNAL, "pump")
            with contextlib.suppress(ConnectionError):
                await self.write({"consumer": sub.consumer, "error": error.to_wire()})


_REPLIED = object()


class ApiServer:
    def __init__(
        self,
        service: GatewayService,
        *,
        frame_max_bytes: int = 64 * 1024,
        max_in_flight: int = MAX_IN_FLIGHT,
        policy: AccessPolicy | None = None,
        token: str | None = None,
        auth_timeout: float = AUTH_TIMEOUT_S,
    ) -> None:
        self.service = service
        self.auth_timeout = auth_timeout
        self.frame_max_bytes = frame_max_bytes
        self.max_in_flight = max_in_flight
        self.policy = policy or AccessPolicy(frozenset({os.geteuid()}))
        self.token = token
        self._servers: list[asyncio.AbstractServer] = []
        self._connections: dict[asyncio.Task[Any], _Connection] = {}
        self._unix_path: Path | None = None

    async def start_unix(self, path: str | Path, mode: int = 0o660) -> None:
        path = Path(path)
        server = await asyncio.start_unix_server(self._on_unix, path=str(path))
        # Between bind and chmod the file has the umask's mode; the peer check still applies.
        os.chmod(path, mode)
        self._unix_path = path
        self._servers.append(server)

    async def start_tcp(
        self, host: str, port: int, ssl_context: ssl.SSLContext | None = None
    ) -> int:
        """Listen on TCP; returns the bound port (useful with port 0). Requires a token."""
        if not self.token:
            raise ValueError("a TCP listener requires a token")
        server = await asyncio.start_server(self._on_tcp, host, port, ssl=ssl_context)
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        # Aborting the transports ends each handler normally (EOF); cancelling the handler
        # tasks instead makes asyncio's streams log them as errors.
        for conn in list(self._connections.values()):
            conn.writer.transport.abort()
        tasks = list(self._connections)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=5)
            for task in pending:
                task.cancel()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        if self._unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._unix_path.unlink()
            self._unix_path = None

    def _track(self, conn: _Connection) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = conn
        task.add_done_callback(lambda t: self._connections.pop(t, None))

    async def _on_unix(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            _pid, uid, gid = peer_credentials(writer.get_extra_info("socket"))
        except OSError:  # the peer is already gone
            writer.transport.abort()
            return
        conn = self._connection(reader, writer, f"uid:{uid}", authenticated=True)
        if not self.policy.allows(uid, gid):
            log.warning("refused API peer uid=%d gid=%d", uid, gid)
            message = f"uid {uid} / gid {gid} is not allowed on this socket"
            with contextlib.suppress(ConnectionError):
                await conn.reply_error(None, ApiError(ErrorCode.E_UNAUTHORIZED, message))
            await conn.close()
            return
        await conn.run()

    async def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = writer.get_extra_info("peername")[:2]
        await self._connection(reader, writer, f"tcp:{host}:{port}", authenticated=False).run()

    def _connection(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client: str,
        *,
        authenticated: bool,
    ) -> _Connection:
        writer.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        conn = _Connection(self, reader, writer, client, authenticated)
        self._track(conn)
        return conn


async def start_from_config(service: GatewayService, api: Api, limits: Limits) -> ApiServer:
    """The daemon's listeners as configured: the Unix socket, plus TCP (TLS if a certificate
    is set) when api.tcp_listen is; load_daemon_config has already checked the combinations."""
    server = ApiServer(
        service,
        frame_max_bytes=limits.frame_max_bytes,
        policy=AccessPolicy.from_config(api.allowed_uids, api.allowed_gids),
        token=api.tcp_token,
    )
    api.socket_path.parent.mkdir(parents=True, exist_ok=True)
    await server.start_unix(api.socket_path, api.socket_mode)
    if api.tcp_listen is not None:
        ctx = tls_context(api.tls_cert, api.tls_key) if api.tls_cert and api.tls_key else None
        try:
            await server.start_tcp(*api.tcp_listen, ssl_context=ctx)
        except BaseException:
            await server.close()
            raise
    return server
