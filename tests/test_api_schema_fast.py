"""The API hot path: the sms.send fast path agrees with the general validator on every input
(the same SendRequest, values and their types, or the same error code and message); the
FrameReader reads as the plain reference does; sms.send with futures pauses and resumes."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import msgpack
import pytest
from api_fakes import Raw, run, serving
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.api import schema
from gateway.api.errors import ApiError, ErrorCode
from gateway.api.framing import HEADER, FrameReader, decode_body, encode_frame

SEND = {"to": "+4915112345678", "from": "ACME", "text": "hello"}


class Sub(str):
    """A str subclass: accepted by the general validator, never by the fast path."""


def outcome(parse: Any, params: dict[Any, Any]) -> tuple[Any, ...]:
    try:
        request = parse(params)
    except ApiError as exc:
        return ("error", exc.code, exc.message)
    fields = [getattr(request, f.name) for f in dataclasses.fields(request)]
    return ("ok", request, [type(value) for value in fields])


def strings(*examples: str) -> st.SearchStrategy[Any]:
    return st.sampled_from(examples) | st.text(max_size=20)


NUMBERS = strings("+4915112345678", "+12025550123", "+0123456789", "4915112345678", "+1234567")
VALUES: dict[Any, st.SearchStrategy[Any]] = {
    "to": NUMBERS | st.sampled_from([None, 4915112345678, Sub("+4915112345678")]),
    "from": strings("ACME", "ACME Bank", "+4915112345678", "12345", "12", " ACME", "ACME™", "")
    | NUMBERS
    | st.sampled_from([None, 5, Sub("ACME"), "Abcdefghijk", "Abcdefghijkl", "Abcdefghij{"]),
    "sender_pool": strings("marketing", "local-sim", "bad pool", "")
    | st.sampled_from([None, 3, Sub("marketing")]),
    "text": strings("hello", "", "x" * 1600, "x" * 1601)
    | st.sampled_from([None, b"hello", 5, Sub("hello")]),
    "validity": st.sampled_from(
        [None, 1, 0, -1, schema.MAX_VALIDITY_S, schema.MAX_VALIDITY_S + 1, True, "1h", 1.0]
    ),
    "priority": st.sampled_from([None, 0, 1, 3, 4, -1, True, False, "1", 2.0]),
    "idempotency_key": strings("k", "", "k" * 64, "k" * 65) | st.sampled_from([None, 5, Sub("k")]),
    "client_ref": strings("r1", "", "r" * 64, "r" * 65) | st.sampled_from([None, 5, Sub("r")]),
    "traffic_class": strings("otp", "bulk", "bad class", "", "c" * 64, "c" * 65)
    | st.sampled_from([None, 1, Sub("otp")]),
    "binary": st.sampled_from([None, b"\x01", b"", "x"]),
    "encoding": st.sampled_from([None, "auto", "gsm7", "ucs2", "utf8"]),
    "data_coding": st.sampled_from([None, 0, 8, 256, True]),
    "colour": st.just("red"),
    1: st.just("one"),
}
COMMON = ("to", "from", "text")


@st.composite
def send_params(draw: st.DrawFn) -> dict[Any, Any]:
    # Mostly the common keys, so that most examples get past the key check.
    keys = [k for k in COMMON if draw(st.integers(0, 9)) > 0]
    keys += draw(st.lists(st.sampled_from(list(VALUES)), max_size=4, unique=True))
    return {key: draw(VALUES[key]) for key in dict.fromkeys(keys)}


@settings(max_examples=3000, deadline=None)
@given(params=send_params())
def test_fast_path_agrees_with_the_general_validator(params: dict[Any, Any]) -> None:
    expected = outcome(schema._parse_send_checked, params)
    assert outcome(schema.parse_send, params) == expected
    fast = schema._parse_send_fast(params)
    if fast is not None:
        assert outcome(schema._parse_send_fast, params) == expected


TYPICAL = [
    {"to": "+4915112345678", "from": "ACME", "text": "hello"},
    {"to": "+4915112345678", "from": "+4915187654321", "text": "hello", "client_ref": "r1"},
    {"to": "+12025550123", "from": "12345", "text": "x" * 1600, "idempotency_key": "k1"},
    {"to": "+4915112345678", "sender_pool": "local-sim", "text": "hello"},
    {"to": "+4915112345678", "from": "ACME", "text": "hi", "validity": 3600, "priority": 3},
    {"to": "+4915112345678", "from": "ACME", "text": "hi", "client_ref": None, "priority": None},
    {"to": "+4915112345678", "from": "ACME", "text": "123456", "traffic_class": "otp"},
]


@pytest.mark.parametrize("params", TYPICAL)
def test_typical_requests_take_the_fast_path(params: dict[str, Any]) -> None:
    fast = schema._parse_send_fast(params)
    assert fast is not None
    assert outcome(schema._parse_send_fast, params) == outcome(schema._parse_send_checked, params)


@pytest.mark.parametrize(
    "params",
    [
        {"to": "+4915112345678", "from": "ACME", "text": "hello", "encoding": "gsm7"},
        {"to": "+4915112345678", "from": "ACME", "binary": b"\x01"},
        {"to": "+4915112345678", "from": "ACME", "sender_pool": "p", "text": "hello"},
        {"to": "+4915112345678", "from": "ACME!", "text": "hello", "colour": "red"},
        {"to": "+4915112345678", "from": Sub("ACME"), "text": "hello"},
    ],
)
def test_other_requests_take_the_general_path(params: dict[str, Any]) -> None:
    assert schema._parse_send_fast(params) is None


def test_remembered_senders_are_bounded() -> None:
    for n in range(schema._MAX_SENDER_KINDS + 10):
        schema.parse_send({"to": "+4915112345678", "from": f"S{n}", "text": "hello"})
    assert len(schema._SENDER_KINDS) <= schema._MAX_SENDER_KINDS
    # a sender not remembered is still checked (and refused) the same way
    with pytest.raises(ApiError) as info:
        schema.parse_send({"to": "+4915112345678", "from": "Abcdefghijkl", "text": "hello"})
    assert info.value.code == "E_BAD_NUMBER"


@pytest.mark.parametrize(
    "rid", [0, 1, -(2**63), 2**64 - 1, 2**64, -(2**63) - 1, True, "a", "", "x" * 65, 1.5, None]
)
def test_request_id_check(rid: Any) -> None:
    message = {"id": rid, "method": "status"}
    if schema.request_id_ok(rid):
        assert schema.parse_request(message).id == rid
    else:
        with pytest.raises(ApiError, match="id: expected"):
            schema.parse_request(message)


# ------------------------------------------------------------------ FrameReader


class ReferenceReader:
    """The plain FrameReader: everything through one bytearray, decode_body per frame."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.buf = bytearray()
        self.broken = False

    def feed(self, data: bytes) -> list[Any]:
        if self.broken:
            return []
        self.buf += data
        out: list[Any] = []
        while len(self.buf) >= HEADER.size:
            (length,) = HEADER.unpack_from(self.buf)
            if length > self.max_bytes:
                self.broken = True
                self.buf = bytearray()
                message = f"frame of {length} octets exceeds the limit of {self.max_bytes}"
                out.append(ApiError(ErrorCode.E_FRAME_TOO_LARGE, message))
                return out
            if len(self.buf) < HEADER.size + length:
                break
            try:
                out.append(decode_body(bytes(self.buf[HEADER.size : HEADER.size + length])))
            except ApiError as exc:
                out.append(exc)
            del self.buf[: HEADER.size + length]
        return out


BODIES = st.one_of(
    st.builds(
        msgpack.packb,
        st.dictionaries(
            st.text(max_size=5), st.integers(-99, 99) | st.text(max_size=5), max_size=3
        ),
    ),
    st.builds(msgpack.packb, st.integers(-99, 99) | st.lists(st.integers(0, 9), max_size=3)),
    st.binary(max_size=12),
)


@st.composite
def streams(draw: st.DrawFn) -> tuple[int, list[bytes]]:
    max_bytes = draw(st.sampled_from([8, 64, 1000]))
    stream = b"".join(HEADER.pack(len(body)) + body for body in draw(st.lists(BODIES)))
    stream += draw(st.binary(max_size=6))  # maybe a partial or oversized header at the end
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    return max_bytes, chunks


@settings(max_examples=500, deadline=None)
@given(case=streams(), as_bytearray=st.booleans())
def test_frame_reader_reads_as_the_reference_does(
    case: tuple[int, list[bytes]], as_bytearray: bool
) -> None:
    max_bytes, chunks = case
    reader, reference = FrameReader(max_bytes), ReferenceReader(max_bytes)
    for chunk in chunks:
        data = bytearray(chunk) if as_bytearray else chunk
        assert reader.feed(data) == reference.feed(chunk)
        assert reader.broken == reference.broken
        assert reader.buffered == len(reference.buf)


def test_encode_frame_matches_packb_after_a_failure() -> None:
    message = {"id": 1, "result": {"message_id": "m1", "duplicate": False, "raw": b"\x00"}}
    with pytest.raises(TypeError):
        encode_frame({"id": 1, "result": [1, 2, object()]})
    body = msgpack.packb(message, use_bin_type=True)
    assert encode_frame(message) == HEADER.pack(len(body)) + body


# ------------------------------------------------------------------ the sms.send hot path


def test_reading_pauses_at_max_in_flight_and_resumes_as_answers_come() -> None:
    """A service answering with futures (the hot path): the third request is read only once
    one of the first two is answered, and every request gets its own reply."""

    async def scenario() -> None:
        async with serving(max_in_flight=2) as (server, _service, path):
            pending: list[asyncio.Future[Any]] = []

            def send_sms(req: schema.SendRequest, client: str) -> asyncio.Future[Any]:
                pending.append(asyncio.get_running_loop().create_future())
                return pending[-1]

            server.service.send_sms = send_sms  # type: ignore[method-assign]
            raw = await Raw.unix(path)
            for rid in range(4):
                await raw.send({"id": rid, "method": "sms.send", "params": SEND})
            while len(pending) < 2:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            assert len(pending) == 2  # reading is paused
            pending[1].set_result({"message_id": "b"})
            assert await raw.recv() == {"id": 1, "result": {"message_id": "b"}}
            while len(pending) < 3:
                await asyncio.sleep(0.01)
            pending[0].set_exception(ApiError(ErrorCode.E_QUEUE_FULL, "full"))
            error = ApiError(ErrorCode.E_QUEUE_FULL, "full").to_wire()
            assert await raw.recv() == {"id": 0, "error": error}
            while len(pending) < 4:
                await asyncio.sleep(0.01)
            pending[3].cancel()
            cancelled = ApiError(ErrorCode.E_INTERNAL, "cancelled").to_wire()
            assert await raw.recv() == {"id": 3, "error": cancelled}
            pending[2].set_result({"message_id": "c"})
            assert await raw.recv() == {"id": 2, "result": {"message_id": "c"}}
            await raw.close()

    run(scenario())


def test_a_service_answering_through_a_callback_gets_the_same_replies() -> None:
    """send_sms_then (GatewayCore's hot path): no future; `then` answers, errors included, and
    in-flight slots are given back as answers come."""

    async def scenario() -> None:
        async with serving(max_in_flight=2) as (server, _service, path):
            pending: list[Any] = []

            def send_sms_then(req: schema.SendRequest, client: str, then: Any) -> None:
                if req.client_ref == "refused":
                    raise ApiError(ErrorCode.E_QUEUE_FULL, "full now")
                pending.append(then)

            server.service.send_sms_then = send_sms_then  # type: ignore[attr-defined]
            raw = await Raw.unix(path)
            await raw.send(
                {"id": 9, "method": "sms.send", "params": {**SEND, "client_ref": "refused"}}
            )
            assert await raw.recv() == {
                "id": 9,
                "error": ApiError(ErrorCode.E_QUEUE_FULL, "full now").to_wire(),
            }
            for rid in range(3):
                await raw.send({"id": rid, "method": "sms.send", "params": SEND})
            while len(pending) < 2:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            assert len(pending) == 2  # reading is paused
            pending[1](None, {"message_id": "b"})
            assert await raw.recv() == {"id": 1, "result": {"message_id": "b"}}
            while len(pending) < 3:
                await asyncio.sleep(0.01)
            pending[0](ApiError(ErrorCode.E_NOT_FOUND, "gone"), None)
            assert await raw.recv() == {
                "id": 0,
                "error": ApiError(ErrorCode.E_NOT_FOUND, "gone").to_wire(),
            }
            pending[2](RuntimeError("a bug"), None)
            internal = ApiError(ErrorCode.E_INTERNAL, "internal error").to_wire()
            assert await raw.recv() == {"id": 2, "error": internal}
            await raw.close()

    run(scenario())
