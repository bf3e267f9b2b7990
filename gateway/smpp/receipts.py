"""Delivery receipts: the SMPP 3.4 Appendix B text format and the receipt TLVs.

The text format is only a de-facto standard:

    id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD
    err:E text: . . .

Carriers vary key case, spacing, order and the spelling of keys and stat values, so the parser
looks for the known keys anywhere and reads each value up to the next whitespace, except text,
which takes everything after it (it may contain colons, so it must come last).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from gateway.smpp.constants import MessageState, Tag


class ReceiptState(StrEnum):
    DELIVERED = "delivered"
    EXPIRED = "expired"
    DELETED = "deleted"
    UNDELIVERABLE = "undeliverable"
    ACCEPTED = "accepted"
    UNKNOWN = "unknown"
    REJECTED = "rejected"
    ENROUTE = "enroute"


class ReceiptParseError(ValueError):
    """A receipt without a message id, in its text or its TLVs."""


class MessageIdError(ValueError):
    """A carrier message id that is not valid in its declared format."""


# not frozen: built per message (docs/ARCHITECTURE.md, "Per-message objects")
@dataclass
class Receipt:
    """A parsed delivery receipt.

    Dates are naive datetimes exactly as the SMSC wrote them: the receipt carries no time zone
    (it is usually the SMSC's local time). Fields absent from the receipt are None; stat_text is
    "" when the text had no stat.
    """

    message_id: str
    state: ReceiptState
    stat_text: str
    error_code: str | None
    submitted: int | None
    delivered: int | None
    submit_date: datetime | None
    done_date: datetime | None
    text: str | None
    network_error: tuple[int, int] | None


_KEYS = re.compile(
    r"(?<![\w])(?P<key>id|sub|dlvrd|submit[\s_]*date|done[\s_]*date|stat|err|text)\s*:",
    re.IGNORECASE,
)
_STATES = {
    "DELIVRD": ReceiptState.DELIVERED,
    "DELIVERED": ReceiptState.DELIVERED,
    "EXPIRED": ReceiptState.EXPIRED,
    "DELETED": ReceiptState.DELETED,
    "UNDELIV": ReceiptState.UNDELIVERABLE,
    "UNDELIVERABLE": ReceiptState.UNDELIVERABLE,
    "UNDELIVERED": ReceiptState.UNDELIVERABLE,
    "FAILED": ReceiptState.UNDELIVERABLE,
    "ACCEPTD": ReceiptState.ACCEPTED,
    "ACCEPTED": ReceiptState.ACCEPTED,
    "UNKNOWN": ReceiptState.UNKNOWN,
    "REJECTD": ReceiptState.REJECTED,
    "REJECTED": ReceiptState.REJECTED,
    "ENROUTE": ReceiptState.ENROUTE,
    "EN_ROUTE": ReceiptState.ENROUTE,
}
_MESSAGE_STATES: dict[int, ReceiptState] = {
    MessageState.ENROUTE: ReceiptState.ENROUTE,
    MessageState.DELIVERED: ReceiptState.DELIVERED,
    MessageState.EXPIRED: ReceiptState.EXPIRED,
    MessageState.DELETED: ReceiptState.DELETED,
    MessageState.UNDELIVERABLE: ReceiptState.UNDELIVERABLE,
    MessageState.ACCEPTED: ReceiptState.ACCEPTED,
    MessageState.UNKNOWN: ReceiptState.UNKNOWN,
    MessageState.REJECTED: ReceiptState.REJECTED,
}
# Enum members read per message, as module globals (docs/ARCHITECTURE.md, "Per-message objects")
_RECEIPTED_MESSAGE_ID = Tag.RECEIPTED_MESSAGE_ID
_MESSAGE_STATE = Tag.MESSAGE_STATE
_NETWORK_ERROR_CODE = Tag.NETWORK_ERROR_CODE
_UNKNOWN = ReceiptState.UNKNOWN


def parse_receipt(short_message: bytes | str, tlvs: Mapping[int, object] | None = None) -> Receipt:
    """Parse a receipt from its text and TLVs; the TLVs win where both carry a field.

    receipted_message_id gives the id and message_state the state (an unknown message_state is
    ignored); network_error_code gives network_error as (type, code). An unrecognised stat value
    maps to UNKNOWN, with stat_text keeping it verbatim. Bytes are read as Latin-1, which cannot
    fail; receipt text is ASCII in practice.
    """
    if isinstance(short_message, bytes):
        short_message = short_message.decode("latin-1")
    fields = _fields(short_message.replace("\x00", ""))
    get = fields.get
    stat_text = get("stat", "")
    message_id, state = _id_and_state(short_message, tlvs, get("id"), stat_text)
    return Receipt(
        message_id=message_id,
        state=state,
        stat_text=stat_text,
        error_code=get("err"),
        submitted=_count(get("sub")),
        delivered=_count(get("dlvrd")),
        submit_date=_date(get("submitdate")),
        done_date=_date(get("donedate")),
        text=get("text"),
        network_error=_network_error(tlvs.get(_NETWORK_ERROR_CODE)) if tlvs else None,
    )


def receipt_summary(
    short_message: bytes | str, tlvs: Mapping[int, object] | None = None
) -> tuple[str, ReceiptState, str, str | None]:
    """(message_id, state, stat_text, error_code) exactly as `parse_receipt` gives them (and
    its ReceiptParseError), without the fields the carrier link does not store (counts,
    dates, text, network error): the receipt path of every message."""
    if isinstance(short_message, bytes):
        short_message = short_message.decode("latin-1")
    canonical = _CANONICAL.fullmatch(short_message.replace("\x00", ""))
    if canonical is None:
        receipt = parse_receipt(short_message, tlvs)
        return receipt.message_id, receipt.state, receipt.stat_text, receipt.error_code
    stat_text = canonical[6]
    message_id, state = _id_and_state(short_message, tlvs, canonical[1], stat_text)
    return message_id, state, stat_text, canonical[7]


def _id_and_state(
    short_message: str, tlvs: Mapping[int, object] | None, text_id: str | None, stat_text: str
) -> tuple[str, ReceiptState]:
    """The TLVs win where they say something (without TLVs, as from many carriers, their
    readers would all answer None); an unknown stat is UNKNOWN."""
    message_id = (tlvs and _tlv_text(tlvs.get(_RECEIPTED_MESSAGE_ID))) or text_id
    if not message_id:
        raise ReceiptParseError(f"no message id in receipt {short_message!r}")
    state = (tlvs and _tlv_state(tlvs.get(_MESSAGE_STATE))) or _STATES.get(
        stat_text.upper(), _UNKNOWN
    )
    return message_id, state


# The layout of Appendix B exactly as most SMSCs write it: read in one match. Anything else
# (other case, spacing, order, missing keys, an empty value, a value with a colon) goes to the
# general scan, which gives the same fields for this layout (tests/test_receipts.py checks the
# two agree). A value cannot hold a space, so each one runs exactly to the next key.
_V = r"([^\s:]+)"
_CANONICAL = re.compile(
    rf"id:{_V} sub:{_V} dlvrd:{_V} submit date:{_V} done date:{_V} stat:{_V} err:{_V}"
    r"(?: [Tt]ext:(.*))?",
    re.DOTALL,
)
_CANONICAL_KEYS = ("id", "sub", "dlvrd", "submitdate", "donedate", "stat", "err")


def _fields(text: str) -> dict[str, str]:
    """Values by key (lower case, spaces and underscores removed); the first occurrence wins."""
    canonical = _CANONICAL.fullmatch(text)
    if canonical is None:
        return _scan_fields(text)
    values = canonical.groups()
    fields = dict(zip(_CANONICAL_KEYS, values, strict=False))  # the seven keys, not text
    if values[7] is not None:
        fields["text"] = values[7].strip()
    return fields


def _scan_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    matches = list(_KEYS.finditer(text))
    for index, match in enumerate(matches):
        key = _KEY_SPELLINGS.get(match["key"]) or _key_name(match["key"])
        if key == "text":
            fields.setdefault(key, text[match.end() :].strip())
            break
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        value = text[match.end() : end].split()
        if value:
            fields.setdefault(key, value[0])
    return fields


_KEY_NOISE = re.compile(r"[\s_]")
_KEY_SPELLINGS: dict[str, str] = {}  # each spelling seen ("submit date", "Submit_Date"...)


def _key_name(spelling: str) -> str:
    key = _KEY_NOISE.sub("", spelling).lower()
    if len(_KEY_SPELLINGS) < 256:  # carriers use a handful of spellings; bound it anyway
        _KEY_SPELLINGS[spelling] = key
    return key


def _tlv_text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    return value.strip("\x00").strip() or None


def _tlv_state(value: object) -> ReceiptState | None:
    if isinstance(value, bytes) and len(value) == 1:
        value = value[0]
    return _MESSAGE_STATES.get(value) if isinstance(value, int) else None


def _network_error(value: object) -> tuple[int, int] | None:
    if isinstance(value, bytes) and len(value) == 3:
        return value[0], int.from_bytes(value[1:], "big")
    if isinstance(value, tuple) and len(value) == 2:
        kind, code = value
        if isinstance(kind, int) and isinstance(code, int):
            return kind, code
    return None


# _count and _date are cached: receipts repeat the same few counts and, within a minute, the
# same dates. Their results are immutable.
@functools.lru_cache(maxsize=256)
def _count(value: str | None) -> int | None:
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


@functools.lru_cache(maxsize=1024)
def _date(value: str | None) -> datetime | None:
    if value is None or len(value) not in (10, 12) or not (value.isascii() and value.isdigit()):
        return None
    year = int(value[0:2])
    year += 1900 if year >= 69 else 2000  # the POSIX %y pivot, as strptime reads it
    try:
        return datetime(
            year,
            int(value[2:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[8:10]),
            int(value[10:12]) if len(value) == 12 else 0,
        )
    except ValueError:  # month 13, day 32, hour 24 ...
        return None


_HEX_ID = re.compile(r"[0-9A-Fa-f]+")
_ID_DIGITS = {"hex": _HEX_ID, "decimal": re.compile(r"[0-9]+")}


def normalise_message_id(raw: str, id_format: str) -> str:
    """One canonical form for a carrier message id, so submit_resp and receipt ids compare.

    For the numeric formats ("hex", "decimal") the canonical form is the number in lower-case
    hexadecimal without leading zeros ("0" for zero), so "0001A2B3" as hex and "107187" as
    decimal agree. "string" ids are only stripped of surrounding whitespace. Raises
    MessageIdError for digits invalid in the format, an empty id or an unknown format.
    """
    value = raw.strip()
    if id_format == "hex" and _HEX_ID.fullmatch(value):  # the common case, first
        return format(int(value, 16), "x")
    if id_format == "string":
        if not value:
            raise MessageIdError("empty message id")
        return value
    digits = _ID_DIGITS.get(id_format)
    if digits is None:
        raise MessageIdError(f"unknown message id format {id_format!r}")
    if not digits.fullmatch(value):
        raise MessageIdError(f"{raw!r} is not a {id_format} message id")
    return format(int(value, 16 if id_format == "hex" else 10), "x")
