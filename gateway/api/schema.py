"""Validation of requests into typed values; every failure is an ApiError naming the field.

Phone numbers are E.164 with the leading "+" required: "+4915112345678". Without it a number is
ambiguous (national or international format), and guessing is how messages reach the wrong
person. 8 to 15 digits, the first not 0.

A sender ("from") is one of: an E.164 number as above; a short code of 3 to 8 digits (no "+");
an alphanumeric sender of 1 to 11 GSM 03.38 septets (extension characters count two) with at
least one non-digit, not starting or ending with a space.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from gateway.api.errors import ApiError, ErrorCode
from gateway.smpp import gsm0338

MAX_TEXT_CHARS = 1600
MAX_BINARY_OCTETS = 1400  # ten 140-octet parts
MAX_VALIDITY_S = 7 * 86_400
MAX_KEY_LEN = 64
MAX_CONSUMER_LEN = 64
MAX_EVENTS_LIMIT = 1000
MAX_ID_STR_LEN = 64

_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_SHORT_CODE = re.compile(r"[0-9]{3,8}")
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
ENCODINGS = ("auto", "gsm7", "latin1", "ucs2")


class SenderKind(enum.StrEnum):
    E164 = "e164"
    SHORT_CODE = "short_code"
    ALPHANUMERIC = "alphanumeric"
    POOL = "pool"


# Enum members read per message, as module globals (docs/ARCHITECTURE.md, "Per-message objects")
_POOL = SenderKind.POOL


@dataclass(frozen=True, slots=True)
class Request:
    id: int | str
    method: str
    params: dict[str, Any]


# not frozen: built per message (docs/ARCHITECTURE.md, "Per-message objects")
@dataclass(slots=True)
class SendRequest:
    to: str
    sender: str  # the number/name, or the pool name when sender_kind is POOL
    sender_kind: SenderKind
    text: str | None = None
    binary: bytes | None = None
    encoding: str = "auto"  # text only: preferred encoding, "auto" lets the carrier profile pick
    data_coding: int | None = None  # binary only: SMPP data_coding (default 4, 8-bit data)
    validity_s: int | None = None
    priority: int = 0
    idempotency_key: str | None = None
    client_ref: str | None = None
    traffic_class: str | None = None  # a route table class (None: "default")


@dataclass(frozen=True, slots=True)
class GetRequest:
    message_id: str


@dataclass(frozen=True, slots=True)
class SubscribeRequest:
    consumer: str
    after: int | None = None  # None: from the consumer's acked cursor
    window: int = 100  # pushed but not yet acked events, at most


@dataclass(frozen=True, slots=True)
class AckRequest:
    consumer: str
    seq: int


@dataclass(frozen=True, slots=True)
class ReadEventsRequest:
    consumer: str
    after: int | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class ConsumerRequest:
    consumer: str


@dataclass(frozen=True, slots=True)
class AuthRequest:
    token: str


def _bad(field: str, expected: str) -> ApiError:
    return ApiError(ErrorCode.E_BAD_PARAMS, f"{field}: expected {expected}")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_ENVELOPE_KEYS = frozenset({"id", "method", "params"})


def parse_request(message: dict[str, Any]) -> Request:
    """The envelope {"id", "method", "params"?}; E_BAD_FRAME if it is not one."""
    if not message.keys() <= _ENVELOPE_KEYS:
        unknown = sorted(str(k) for k in message if k not in _ENVELOPE_KEYS)
        raise ApiError(ErrorCode.E_BAD_FRAME, f"unknown request key: {unknown[0]}")
    rid = message.get("id")
    # An exact int (the usual id) is range-checked inline; anything else takes the full check.
    if not (_MIN_ID <= rid < _MAX_ID if type(rid) is int else request_id_ok(rid)):
        raise ApiError(ErrorCode.E_BAD_FRAME, "id: expected an integer or a string of 1-64")
    method = message.get("method")
    if not isinstance(method, str):
        raise ApiError(ErrorCode.E_BAD_FRAME, "method: expected a string")
    params = message.get("params", {})
    if not isinstance(params, dict):
        raise ApiError(ErrorCode.E_BAD_FRAME, "params: expected a map")
    return Request(rid, method, params)


_MIN_ID = -(2**63)
_MAX_ID = 2**64  # exclusive


def request_id_ok(rid: Any) -> bool:
    if is_int(rid):
        return _MIN_ID <= rid < _MAX_ID
    return isinstance(rid, str) and 0 < len(rid) <= MAX_ID_STR_LEN


class _Params:
    """Reads fields off a params map, then refuses whatever was not read."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.seen: set[str] = set()

    def get(self, name: str) -> Any:
        self.seen.add(name)
        return self.params.get(name)

    def string(self, name: str, max_len: int, *, required: bool = False) -> str | None:
        value = self.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not 0 < len(value) <= max_len:
            raise _bad(name, f"a string of 1-{max_len} characters")
        return value

    def name(self, field: str) -> str:
        value = self.get(field)
        if not isinstance(value, str) or not _NAME.fullmatch(value):
            raise _bad(field, "1-64 characters of A-Z a-z 0-9 _ . : -")
        return value

    def integer(self, name: str, low: int, high: int, default: int | None = None) -> int | None:
        value = self.get(name)
        if value is None:
            return default
        if not is_int(value) or not low <= value <= high:
            raise _bad(name, f"an integer from {low} to {high}")
        return value

    def done(self) -> None:
        if self.params.keys() <= self.seen:
            return
        unknown = sorted(str(k) for k in self.params if k not in self.seen)
        if unknown:
            raise ApiError(ErrorCode.E_BAD_PARAMS, f"{unknown[0]}: unknown parameter")


def check_e164(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _bad(field, "a string")
    if not _E164.fullmatch(value):
        raise ApiError(
            ErrorCode.E_BAD_NUMBER,
            f"{field}: {value[:32]!r} is not an E.164 number like +4915112345678",
        )
    return value


def check_sender(value: Any) -> tuple[str, SenderKind]:
    if not isinstance(value, str):
        raise _bad("from", "a string")
    if value.startswith("+"):
        return check_e164("from", value), SenderKind.E164
    if value.isdigit() and value.isascii():
        if _SHORT_CODE.fullmatch(value):
            return value, SenderKind.SHORT_CODE
        raise ApiError(ErrorCode.E_BAD_NUMBER, f"from: {value[:32]!r}: a short code has 3-8 digits")
    ok = (
        value.strip() == value
        and value != ""
        and gsm0338.can_encode(value)
        and gsm0338.septet_count(value) <= 11
    )
    if not ok:
        raise ApiError(
            ErrorCode.E_BAD_NUMBER,
            f"from: {value[:32]!r} is not an alphanumeric sender (1-11 GSM characters)",
        )
    return value, SenderKind.ALPHANUMERIC


def parse_send(params: dict[str, Any]) -> SendRequest:
    """An sms.send request; ApiError naming the first field at fault otherwise."""
    request = _parse_send_fast(params)
    if request is None:
        request = _parse_send_checked(params)
    return request


# The keys of a plain text message. Anything else (binary, encoding, data_coding, an unknown
# key) goes to the general validator.
_FAST_SEND_KEYS = frozenset(
    {
        "to",
        "from",
        "sender_pool",
        "text",
        "client_ref",
        "idempotency_key",
        "validity",
        "priority",
        "traffic_class",
    }
)
# Senders already accepted by check_sender, with their kind: a deployment uses a handful.
_SENDER_KINDS: dict[str, SenderKind] = {}
_MAX_SENDER_KINDS = 256


def _parse_send_fast(params: dict[str, Any]) -> SendRequest | None:
    """The common well-formed text message in one pass, or None for anything else.

    It only accepts what _parse_send_checked accepts, building the same SendRequest; it never
    raises, so every refusal (code and message) comes from _parse_send_checked
    (tests/test_api_schema_fast.py holds the two equal).
    """
    if not params.keys() <= _FAST_SEND_KEYS:
        return None
    get = params.get
    to, text = get("to"), get("text")
    if type(to) is not str or type(text) is not str or not 0 < len(text) <= MAX_TEXT_CHARS:
        return None
    if not _E164.fullmatch(to):
        return None
    raw_from, pool = get("from"), get("sender_pool")
    if pool is None:
        kind = _sender_kind(raw_from)
        sender = raw_from
    elif raw_from is None and type(pool) is str and _NAME.fullmatch(pool):
        kind, sender = _POOL, pool
    else:
        return None
    validity, priority = get("validity"), get("priority")
    key, ref = get("idempotency_key"), get("client_ref")
    traffic_class = get("traffic_class")
    if traffic_class is not None and not (
        type(traffic_class) is str and _NAME.fullmatch(traffic_class)
    ):
        return None
    if (
        kind is None
        or not (validity is None or (type(validity) is int and 1 <= validity <= MAX_VALIDITY_S))
        or not (priority is None or (type(priority) is int and 0 <= priority <= 3))
        or not (key is None or (type(key) is str and 0 < len(key) <= MAX_KEY_LEN))
        or not (ref is None or (type(ref) is str and 0 < len(ref) <= MAX_KEY_LEN))
    ):
        return None
    return SendRequest(
        to=to,
        sender=sender,
        sender_kind=kind,
        text=text,
        validity_s=validity,
        priority=priority or 0,
        idempotency_key=key,
        client_ref=ref,
        traffic_class=traffic_class,
    )


def _sender_kind(value: Any) -> SenderKind | None:
    """check_sender's kind for an acceptable "from", None otherwise (remembered per value)."""
    if type(value) is not str:
        return None
    kind = _SENDER_KINDS.get(value)
    if kind is None:
        try:
            kind = check_sender(value)[1]
        except ApiError:
            return None
        if len(_SENDER_KINDS) < _MAX_SENDER_KINDS:
            _SENDER_KINDS[value] = kind
    return kind


def _parse_send_checked(params: dict[str, Any]) -> SendRequest:
    """The general validator: every field checked in order, the first fault reported."""
    p = _Params(params)
    raw_to = p.get("to")
    if raw_to is None:
        raise _bad("to", "an E.164 number (missing)")
    to = check_e164("to", raw_to)
    raw_from, pool = p.get("from"), p.get("sender_pool")
    if (raw_from is None) == (pool is None):
        raise _bad("from", "exactly one of from and sender_pool")
    if pool is not None:
        sender, kind = p.name("sender_pool"), SenderKind.POOL
    else:
        sender, kind = check_sender(raw_from)
    text, binary = p.get("text"), p.get("binary")
    if (text is None) == (binary is None):
        raise _bad("text", "exactly one of text and binary")
    encoding = p.get("encoding")
    data_coding = p.integer("data_coding", 0, 255)
    if text is not None:
        if not isinstance(text, str) or not 0 < len(text) <= MAX_TEXT_CHARS:
            raise _bad("text", f"a string of 1-{MAX_TEXT_CHARS} characters")
        if data_coding is not None:
            raise _bad("data_coding", "no data_coding with text (use encoding)")
        if encoding is None:
            encoding = "auto"
        if encoding not in ENCODINGS:
            raise _bad("encoding", "one of " + ", ".join(ENCODINGS))
    else:
        if not isinstance(binary, bytes) or not 0 < len(binary) <= MAX_BINARY_OCTETS:
            raise _bad("binary", f"msgpack bin of 1-{MAX_BINARY_OCTETS} octets")
        if encoding is not None:
            raise _bad("encoding", "no encoding with binary (use data_coding)")
        encoding = "auto"
        data_coding = 4 if data_coding is None else data_coding
    validity = p.integer("validity", 1, MAX_VALIDITY_S)
    priority = p.integer("priority", 0, 3, 0)
    key = p.string("idempotency_key", MAX_KEY_LEN)
    ref = p.string("client_ref", MAX_KEY_LEN)
    traffic_class = p.name("traffic_class") if p.get("traffic_class") is not None else None
    p.done()
    assert priority is not None
    return SendRequest(
        to=to,
        sender=sender,
        sender_kind=kind,
        text=text,
        binary=binary,
        encoding=encoding,
        data_coding=data_coding,
        validity_s=validity,
        priority=priority,
        idempotency_key=key,
        client_ref=ref,
        traffic_class=traffic_class,
    )


def parse_get(params: dict[str, Any]) -> GetRequest:
    p = _Params(params)
    message_id = p.string("message_id", 128, required=True)
    p.done()
    assert message_id is not None
    return GetRequest(message_id)


def parse_subscribe(params: dict[str, Any]) -> SubscribeRequest:
    p = _Params(params)
    consumer = p.name("consumer")
    after = p.integer("after", 0, 2**63 - 1)
    window = p.integer("window", 1, MAX_EVENTS_LIMIT, 100)
    p.done()
    assert window is not None
    return SubscribeRequest(consumer, after, window)


def parse_ack(params: dict[str, Any]) -> AckRequest:
    p = _Params(params)
    consumer = p.name("consumer")
    seq = p.integer("seq", 0, 2**63 - 1)
    if seq is None:
        raise _bad("seq", "an integer (missing)")
    p.done()
    return AckRequest(consumer, seq)


def parse_read(params: dict[str, Any]) -> ReadEventsRequest:
    p = _Params(params)
    consumer = p.name("consumer")
    after = p.integer("after", 0, 2**63 - 1)
    limit = p.integer("limit", 1, MAX_EVENTS_LIMIT, 100)
    p.done()
    assert limit is not None
    return ReadEventsRequest(consumer, after, limit)


def parse_consumer(params: dict[str, Any]) -> ConsumerRequest:
    p = _Params(params)
    consumer = p.name("consumer")
    p.done()
    return ConsumerRequest(consumer)


def parse_auth(params: dict[str, Any]) -> AuthRequest:
    p = _Params(params)
    token = p.string("token", 256, required=True)
    p.done()
    assert token is not None
    return AuthRequest(token)


def parse_empty(params: dict[str, Any]) -> None:
    _Params(params).done()
