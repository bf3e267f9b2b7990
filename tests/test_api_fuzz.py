"""Random bytes and random msgpack frames at the live API socket: the server answers each
well-framed request with one reply of the documented shape, and stays up."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
from api_fakes import TIMEOUT, ThreadedServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.api.errors import ErrorCode
from gateway.api.framing import HEADER, FrameReader, encode_frame

CODES = {code.value for code in ErrorCode}
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    srv = ThreadedServer()
    srv.do(srv.service.gate.set)  # "gated" sends must not block the fuzzer
    try:
        yield srv
    finally:
        srv.close()


def connect(server: ThreadedServer) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    sock.connect(str(server.path))
    return sock


def read_replies(sock: socket.socket, reader: FrameReader, count: int | None) -> list[Any]:
    """`count` messages, or every message until EOF when count is None."""
    out: list[Any] = []
    while count is None or len(out) < count:
        data = sock.recv(65536)
        if not data:
            break
        out.extend(reader.feed(data))
    return out


def check_reply(reply: Any) -> None:
    assert isinstance(reply, dict) and "id" in reply, reply
    if "error" in reply:
        error = reply["error"]
        assert error["code"] in CODES and isinstance(error["message"], str)
        assert isinstance(error["retriable"], bool)
    else:
        assert "result" in reply


def assert_alive(server: ThreadedServer) -> None:
    with connect(server) as sock:
        sock.sendall(encode_frame({"id": "alive", "method": "status"}))
        (reply,) = read_replies(sock, FrameReader(1 << 24), 1)
    assert reply["id"] == "alive" and reply["result"]["version"] == "test"


@FUZZ
@given(data=st.binary(max_size=2000))
def test_random_bytes(server: ThreadedServer, data: bytes) -> None:
    with connect(server) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        for reply in read_replies(sock, FrameReader(1 << 24), None):  # until the server closes
            check_reply(reply)
    assert_alive(server)


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
param_keys = st.sampled_from(
    ["to", "from", "sender_pool", "text", "binary", "encoding", "data_coding", "validity",
     "priority", "idempotency_key", "client_ref", "message_id", "consumer", "after", "seq",
     "limit", "window", "token", "x"]
)  # fmt: skip
good_values = st.sampled_from(["+4915112345678", "ACME", "c1", "hello", 1, 0, 3, b"\x01"])
params = st.dictionaries(param_keys, good_values | values, max_size=6)
methods = st.sampled_from(
    ["sms.send", "sms.get", "status", "events.read", "events.ack", "events.unsubscribe",
     "events.nope", "auth", ""]
) | st.text(max_size=10)  # fmt: skip
requests = st.fixed_dictionaries(
    {},
    optional={
        "id": st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.text(max_size=70) | values,
        "method": methods | values,
        "params": params | values,
        "junk": values,
    },
)


@FUZZ
@given(frames=st.lists(requests, min_size=1, max_size=8))
def test_random_frames(server: ThreadedServer, frames: list[dict[str, Any]]) -> None:
    with connect(server) as sock:
        sock.sendall(b"".join(HEADER.pack(len(b)) + b for b in map(msgpack.packb, frames)))
        sock.sendall(encode_frame({"id": "final", "method": "status"}))
        replies = read_replies(sock, FrameReader(1 << 24), len(frames) + 1)
    assert len(replies) == len(frames) + 1
    for reply in replies:
        check_reply(reply)
    assert any(r["id"] == "final" and "result" in r for r in replies)
    assert_alive(server)
