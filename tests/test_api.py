"""The socket API against a real server on a temporary Unix socket (and TCP), with an
in-memory service. Every scenario is bounded by a timeout; none asserts on timing."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
from typing import Any

import msgpack
import pytest
from api_fakes import TIMEOUT, FakeService, Raw, ThreadedServer, run, serving, short_tmpdir

from gateway.api import schema
from gateway.api.client import GatewayClient, SyncGatewayClient
from gateway.api.errors import ApiError
from gateway.api.framing import HEADER, FrameReader, encode_frame
from gateway.api.schema import SenderKind
from gateway.api.server import AccessPolicy, start_from_config, tls_context

SEND = {"to": "+4915112345678", "from": "ACME", "text": "hello"}


# ------------------------------------------------------------------ framing and schema


def test_frame_reader_splits_any_chunking() -> None:
    stream = b"".join(encode_frame({"id": i, "method": "status"}) for i in range(5))
    reader = FrameReader()
    out = [m for byte in range(len(stream)) for m in reader.feed(stream[byte : byte + 1])]
    assert out == [{"id": i, "method": "status"} for i in range(5)]
    assert reader.feed(stream) == out and reader.buffered == 0


def test_frame_reader_errors() -> None:
    reader = FrameReader(max_bytes=100)
    bad = HEADER.pack(1) + b"\xc1" + HEADER.pack(2) + msgpack.packb([1]) + encode_frame({"a": 1})
    out = reader.feed(bad)
    assert [getattr(m, "code", m) for m in out] == ["E_BAD_FRAME", "E_BAD_FRAME", {"a": 1}]
    out = reader.feed(HEADER.pack(101) + b"x" * 200)
    assert [m.code for m in out] == ["E_FRAME_TOO_LARGE"]  # type: ignore[union-attr]
    assert reader.broken and reader.feed(encode_frame({"a": 1})) == []


@pytest.mark.parametrize(
    "number", ["+4915112345678", "+12025550123", "+123456789012345", "+33612345678"]
)
def test_e164_accepted(number: str) -> None:
    assert schema.parse_send({**SEND, "to": number}).to == number


@pytest.mark.parametrize(
    "number",
    [
        "4915112345678",
        "+0123456789",
        "+1234567",
        "+1234567890123456",
        "+49 151 123",
        "+٤٩١٥١١٢٣٤٥٦",
    ],
)
def test_e164_refused(number: str) -> None:
    with pytest.raises(ApiError) as info:
        schema.parse_send({**SEND, "to": number})
    assert info.value.code == "E_BAD_NUMBER" and "to" in info.value.message


@pytest.mark.parametrize(
    ("sender", "kind"),
    [
        ("+4915112345678", SenderKind.E164),
        ("12345", SenderKind.SHORT_CODE),
        ("ACME Bank", SenderKind.ALPHANUMERIC),
        ("Abcdefghijk", SenderKind.ALPHANUMERIC),
    ],
)
def test_sender_kinds(sender: str, kind: SenderKind) -> None:
    assert schema.parse_send({**SEND, "from": sender}).sender_kind is kind


@pytest.mark.parametrize("sender", ["Abcdefghijkl", "Abcdefghij{", " ACME", "ACME™", "12", ""])
def test_sender_refused(sender: str) -> None:
    with pytest.raises(ApiError) as info:
        schema.parse_send({**SEND, "from": sender})
    assert info.value.code == "E_BAD_NUMBER"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"to": "+4915112345678", "text": "x"}, "from"),
        ({**SEND, "sender_pool": "p"}, "from"),
        ({**SEND, "binary": b"\x01"}, "text"),
        ({**SEND, "text": ""}, "text"),
        ({**SEND, "text": "x" * 1601}, "text"),
        ({**SEND, "priority": 4}, "priority"),
        ({**SEND, "priority": True}, "priority"),
        ({**SEND, "validity": "1h"}, "validity"),
        ({**SEND, "encoding": "utf8"}, "encoding"),
        ({**SEND, "data_coding": 8}, "data_coding"),
        ({**SEND, "idempotency_key": "k" * 65}, "idempotency_key"),
        ({**SEND, "client_ref": 5}, "client_ref"),
        ({**SEND, "colour": "red"}, "colour"),
        ({"from": "ACME", "text": "x"}, "to"),
        ({**SEND, "to": 4915112345678}, "to"),
    ],
)
def test_send_params_refused(params: dict[str, Any], field: str) -> None:
    with pytest.raises(ApiError) as info:
        schema.parse_send(params)
    assert info.value.code == "E_BAD_PARAMS"
    assert info.value.message.startswith(f"{field}:")


def test_send_binary_and_pool() -> None:
    req = schema.parse_send(
        {"to": "+4915112345678", "sender_pool": "marketing", "binary": b"\x00\xff", "priority": 3}
    )
    assert (req.binary, req.data_coding, req.sender_kind, req.priority) == (
        b"\x00\xff",
        4,
        SenderKind.POOL,
        3,
    )


# ------------------------------------------------------------------ the live server


def test_pipelined_requests_are_answered_by_id() -> None:
    async def scenario() -> None:
        async with serving() as (_server, service, path):
            raw = await Raw.unix(path)
            raw.writer.write(
                encode_frame(
                    {"id": "slow", "method": "sms.send", "params": {**SEND, "client_ref": "gated"}}
                )
                + encode_frame({"id": 2, "method": "status"})
                + encode_frame({"id": 3, "method": "sms.send", "params": SEND})
            )
            first, second = await raw.recv(), await raw.recv()
            assert {first["id"], second["id"]} == {2, 3}  # type: ignore[index]
            service.gate.set()
            third = await raw.recv()
            assert third == {"id": "slow", "result": {"message_id": "m2", "duplicate": False}}
            await raw.close()

    run(scenario())


BAD_REQUESTS: list[tuple[Any, str, Any]] = [
    # (frame body or message, expected code, expected reply id)
    (b"\xc1", "E_BAD_FRAME", None),
    (b"", "E_BAD_FRAME", None),
    (msgpack.packb([1, 2]), "E_BAD_FRAME", None),
    (b"\x81\xa1a", "E_BAD_FRAME", None),  # truncated map
    (b"\x81\x01\x02", "E_BAD_FRAME", None),  # integer key
    ({"id": 7}, "E_BAD_FRAME", 7),
    ({"id": 1.5, "method": "status"}, "E_BAD_FRAME", None),
    ({"id": 8, "method": "status", "params": [1]}, "E_BAD_FRAME", 8),
    ({"id": 9, "method": "status", "extra": 1}, "E_BAD_FRAME", 9),
    ({"id": 10, "method": "sms.nope"}, "E_UNKNOWN_METHOD", 10),
    ({"id": 11, "method": "sms.send", "params": {"from": "A", "text": "x"}}, "E_BAD_PARAMS", 11),
    ({"id": 12, "method": "sms.send", "params": {**SEND, "priority": "hi"}}, "E_BAD_PARAMS", 12),
    ({"id": 13, "method": "sms.send", "params": {**SEND, "to": "+1"}}, "E_BAD_NUMBER", 13),
    ({"id": 14, "method": "sms.get", "params": {"message_id": "nope"}}, "E_NOT_FOUND", 14),
    ({"id": 15, "method": "status", "params": {"x": 1}}, "E_BAD_PARAMS", 15),
    ({"id": 16, "method": "sms.send", "params": {**SEND, "client_ref": "boom"}}, "E_INTERNAL", 16),
    (
        {"id": 17, "method": "events.ack", "params": {"consumer": "c", "seq": 99}},
        "E_BAD_PARAMS",
        17,
    ),
]


@pytest.mark.parametrize(("bad", "code", "rid"), BAD_REQUESTS)
def test_bad_request_gets_typed_error_and_connection_stays(bad: Any, code: str, rid: Any) -> None:
    async def scenario() -> None:
        async with serving() as (_server, _service, path):
            raw = await Raw.unix(path)
            await (raw.send_body(bad) if isinstance(bad, bytes) else raw.send(bad))
            reply = await raw.recv()
            assert reply is not None and reply["id"] == rid
            assert reply["error"]["code"] == code
            assert isinstance(reply["error"]["message"], str)
            assert reply["error"]["retriable"] is (code == "E_INTERNAL")
            assert (await raw.call(99, "status"))["result"]["version"] == "test"  # type: ignore[index]
            await raw.close()

    run(scenario())


def test_oversized_frame_gets_error_then_close() -> None:
    async def scenario() -> None:
        async with serving(frame_max_bytes=1024) as (_server, _service, path):
            raw = await Raw.unix(path)
            raw.writer.write(HEADER.pack(1025) + b"\x80" * 100)
            reply = await raw.recv()
            assert reply is not None and reply["error"]["code"] == "E_FRAME_TOO_LARGE"
            assert reply["id"] is None
            assert await raw.recv() is None
            await raw.close()
            client = await GatewayClient.connect(path)  # the server is fine
            assert (await client.status())["version"] == "test"
            await client.close()

    run(scenario())


def test_queue_full_is_retriable_and_idempotency() -> None:
    async def scenario() -> None:
        async with (
            serving() as (_server, service, path),
            await GatewayClient.connect(path) as client,
        ):
            first = await client.send_sms(
                "+4915112345678", sender="ACME", text="hi", idempotency_key="k1"
            )
            again = await client.send_sms(
                "+4915112345678", sender="ACME", text="hi", idempotency_key="k1"
            )
            assert again == {"message_id": first["message_id"], "duplicate": True}
            service.queue_full = True
            with pytest.raises(ApiError) as info:
                await client.send_sms("+4915112345678", sender="ACME", text="hi")
            assert info.value.code == "E_QUEUE_FULL" and info.value.retriable
            got = await client.get_sms(first["message_id"])
            assert got["state"] == "accepted"

    run(scenario())


def test_subscribe_replays_pushes_and_advances_only_on_ack() -> None:
    async def scenario() -> None:
        async with serving() as (_server, service, path):
            for n in range(3):
                service.append("receipt", message_id=f"m{n}")
            client = await GatewayClient.connect(path)
            sub = await client.subscribe("billing")
            assert sub.after == 0
            seen = [(await anext(sub))["seq"] for _ in range(3)]
            assert seen == [1, 2, 3]
            assert service.cursors.get("billing", 0) == 0  # delivered is not acked
            await sub.ack(2)
            assert service.cursors["billing"] == 2
            service.append("inbound", text="hi")
            pushed = await anext(sub)
            assert (pushed["seq"], pushed["kind"]) == (4, "inbound")
            await client.close()

            service.append("receipt", message_id="m9")  # while nobody is connected
            client = await GatewayClient.connect(path)
            sub = await client.subscribe("billing")
            assert sub.after == 2
            assert [(await anext(sub))["seq"] for _ in range(3)] == [3, 4, 5]
            other = await client.subscribe("audit", after=4)  # independent cursor
            assert (await anext(other))["seq"] == 5
            with pytest.raises(ApiError) as info:
                await client.subscribe("billing")
            assert info.value.code == "E_BAD_PARAMS"
            await client.ack("billing", 5)
            assert await client.read_events("billing") == []
            assert [e["seq"] for e in await client.read_events("billing", after=3)] == [4, 5]
            await client.close()

    run(scenario())


def test_subscribe_window_waits_for_acks() -> None:
    async def scenario() -> None:
        async with serving() as (_server, service, path):
            for n in range(5):
                service.append("receipt", n=n)
            async with await GatewayClient.connect(path) as client:
                sub = await client.subscribe("c", window=2)
                assert [(await anext(sub))["seq"] for _ in range(2)] == [1, 2]
                await client.call("status")  # a round trip: the pump has had its turn
                assert sub.queue.empty()
                await sub.ack(2)
                assert [(await anext(sub))["seq"] for _ in range(2)] == [3, 4]
                assert await client.call("events.unsubscribe", {"consumer": "c"}) == {
                    "consumer": "c"
                }
                with pytest.raises(ApiError) as info:
                    await client.call("events.unsubscribe", {"consumer": "c"})
                assert info.value.code == "E_NOT_FOUND"
                auth = await client.call("auth", {"token": "ignored on the Unix socket"})
                assert auth == {"authenticated": True}

    run(scenario())


def test_peer_not_in_allow_list_is_refused() -> None:
    uid, gid = os.geteuid(), os.getegid()
    nobody = AccessPolicy(frozenset({uid + 1}), frozenset({gid + 1}))

    async def scenario() -> None:
        async with serving(policy=nobody, mode=0o600) as (_server, _service, path):
            assert os.stat(path).st_mode & 0o777 == 0o600
            client = await GatewayClient.connect(path)
            with pytest.raises(ApiError) as info:
                await client.status()
            assert info.value.code == "E_UNAUTHORIZED"
            assert str(uid) in info.value.message
            await client.close()
        by_group = AccessPolicy(frozenset({uid + 1}), frozenset({gid}))
        async with serving(policy=by_group) as (_, _, path), await GatewayClient.connect(path) as c:
            assert (await c.status())["version"] == "test"

    run(scenario())


async def _tcp_checks(port: int, ctx: ssl.SSLContext | None) -> None:
    host = "127.0.0.1"
    reader, writer = await asyncio.open_connection(host, port, ssl=ctx)
    raw = Raw(reader, writer)
    reply = await raw.call(1, "status")
    assert reply is not None and reply["error"]["code"] == "E_UNAUTHORIZED"
    assert await raw.recv() is None  # closed
    await raw.close()
    with pytest.raises(ApiError) as info:
        await GatewayClient.connect(host=host, port=port, token="wrong-token-xxxxxxx", ssl=ctx)
    assert info.value.code == "E_UNAUTHORIZED"
    client = await GatewayClient.connect(host=host, port=port, token="s3cret-token-123456", ssl=ctx)
    assert (await client.status())["version"] == "test"
    await client.close()


def test_tcp_requires_token() -> None:
    async def scenario() -> None:
        async with serving(token="s3cret-token-123456") as (server, _service, _path):
            await _tcp_checks(await server.start_tcp("127.0.0.1", 0), None)

    run(scenario())


def test_tcp_peer_that_never_authenticates_is_disconnected() -> None:
    async def scenario() -> None:
        async with serving(token="s3cret-token-123456", auth_timeout=0.1) as (server, _, _):
            port = await server.start_tcp("127.0.0.1", 0)
            raw = Raw(*await asyncio.open_connection("127.0.0.1", port))
            reply = await raw.recv()
            assert reply is not None and reply["error"]["code"] == "E_UNAUTHORIZED"
            assert await raw.recv() is None
            await raw.close()

    run(scenario())


def test_tcp_with_tls() -> None:
    with short_tmpdir() as tmp:
        cert, key = tmp / "cert.pem", tmp / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True, timeout=TIMEOUT,
        )  # fmt: skip
        client_ctx = ssl.create_default_context(cafile=str(cert))

        async def scenario() -> None:
            async with serving(token="s3cret-token-123456") as (server, _service, _path):
                port = await server.start_tcp("127.0.0.1", 0, tls_context(cert, key))
                await _tcp_checks(port, client_ctx)

        run(scenario())


def test_sync_client() -> None:
    server = ThreadedServer()
    try:
        with SyncGatewayClient(server.path) as client:
            message_id = client.send_sms("+4915112345678", sender="ACME", text="hi")["message_id"]
            assert client.get_sms(message_id)["to"] == "+4915112345678"
            server.do(server.service.append, "receipt", message_id=message_id)
            event = next(client.events("sync"))
            assert event["message_id"] == message_id
            client.ack("sync", event["seq"])
            assert client.read_events("sync") == []
            with pytest.raises(ApiError) as info:
                client.get_sms("missing")
            assert info.value.code == "E_NOT_FOUND"
    finally:
        server.close()


def test_start_from_config() -> None:
    from gateway.ops.config import Api, Limits

    async def scenario() -> None:
        with short_tmpdir() as tmp:
            api = Api(socket_path=tmp / "run" / "api.sock", socket_mode=0o600)
            server = await start_from_config(FakeService(), api, Limits(frame_max_bytes=100))
            try:
                assert os.stat(api.socket_path).st_mode & 0o777 == 0o600
                raw = await Raw.unix(api.socket_path)
                await raw.send(
                    {"id": 1, "method": "sms.send", "params": {**SEND, "text": "x" * 200}}
                )
                reply = await raw.recv()
                assert reply is not None and reply["error"]["code"] == "E_FRAME_TOO_LARGE"
                await raw.close()
            finally:
                await server.close()
            assert not api.socket_path.exists()

    run(scenario())


def test_a_peer_that_does_not_read_stalls_only_itself() -> None:
    async def scenario() -> None:
        async with serving() as (_server, _service, path):
            hog = await Raw.unix(path)
            request = encode_frame({"id": 1, "method": "sms.get", "params": {"message_id": "x"}})
            hog.writer.write(request * 20_000)  # ~1.5 MB of replies it never reads
            async with await GatewayClient.connect(path) as client:
                for _ in range(20):
                    assert (await client.status())["version"] == "test"
            hog.writer.transport.abort()

    run(scenario())
