"""parse_receipt and normalise_message_id give what the plain readers give, for every input:
the reference below is the straightforward implementation (the general scan only, no caches,
every TLV reader called), kept here to hold the fast paths to it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.smpp import receipts
from gateway.smpp.constants import MessageState, Tag
from gateway.smpp.pdu import NetworkErrorCode
from gateway.smpp.receipts import Receipt, ReceiptState


def reference_date(value: str | None) -> datetime | None:
    if value is None or len(value) not in (10, 12) or not (value.isascii() and value.isdigit()):
        return None
    year = int(value[0:2])
    year += 1900 if year >= 69 else 2000
    try:
        return datetime(
            year,
            int(value[2:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[8:10]),
            int(value[10:12]) if len(value) == 12 else 0,
        )
    except ValueError:
        return None


def reference_count(value: str | None) -> int | None:
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


def reference_parse(short_message: bytes | str, tlvs: Mapping[int, object] | None) -> Receipt:
    if isinstance(short_message, bytes):
        short_message = short_message.decode("latin-1")
    fields = receipts._scan_fields(short_message.replace("\x00", ""))
    tlvs = tlvs or {}
    message_id = receipts._tlv_text(tlvs.get(Tag.RECEIPTED_MESSAGE_ID)) or fields.get("id")
    if not message_id:
        raise receipts.ReceiptParseError(f"no message id in receipt {short_message!r}")
    stat_text = fields.get("stat", "")
    state = receipts._tlv_state(tlvs.get(Tag.MESSAGE_STATE)) or receipts._STATES.get(
        stat_text.upper(), ReceiptState.UNKNOWN
    )
    return Receipt(
        message_id=message_id,
        state=state,
        stat_text=stat_text,
        error_code=fields.get("err"),
        submitted=reference_count(fields.get("sub")),
        delivered=reference_count(fields.get("dlvrd")),
        submit_date=reference_date(fields.get("submitdate")),
        done_date=reference_date(fields.get("donedate")),
        text=fields.get("text"),
        network_error=receipts._network_error(tlvs.get(Tag.NETWORK_ERROR_CODE)),
    )


def reference_normalise(raw: str, id_format: str) -> str:
    value = raw.strip()
    if id_format == "string":
        if not value:
            raise receipts.MessageIdError("empty message id")
        return value
    digits = {"hex": r"[0-9A-Fa-f]+", "decimal": r"[0-9]+"}.get(id_format)
    if digits is None:
        raise receipts.MessageIdError(f"unknown message id format {id_format!r}")
    if not re.fullmatch(digits, value):
        raise receipts.MessageIdError(f"{raw!r} is not a {id_format} message id")
    return format(int(value, 16 if id_format == "hex" else 10), "x")


def outcome(fn: Any, *args: Any) -> Any:
    try:
        return ("ok", fn(*args))
    except ValueError as exc:
        return ("error", type(exc), str(exc))


DATES = st.sampled_from(["2403151230", "240315123059", "2413151230", "6912312359", ""]) | st.text(
    alphabet="0123456789a ", max_size=13
)
VALUES = st.sampled_from(["0123456789", "001", "000", "DELIVRD", "undeliv", "Xyz", "", "a:b"])
VALUE = VALUES | st.text(alphabet="0123456789abcdefABCDEF:_-x é\x00", max_size=12)


@st.composite
def receipt_texts(draw: st.DrawFn) -> str:
    keys = ["id:", " sub:", " dlvrd:", " submit date:", " done date:", " stat:", " err:"]
    values = [draw(DATES if "date" in key else VALUE) for key in keys]
    text = "".join(k + v for k, v in zip(keys, values, strict=True))
    tail = draw(st.sampled_from(["", " text:", " Text:", " TEXT:", " text: ", "text:"]))
    if tail:
        text += tail + draw(st.text(max_size=30))
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(text)))
        noise = draw(st.sampled_from(["", " ", "  ", "\n", "stat:", "id:", "_", "\x00"]))
        text = text[:cut] + noise + text[cut:]
    return text


TLV_VALUES: dict[int, st.SearchStrategy[Any]] = {
    Tag.RECEIPTED_MESSAGE_ID: st.sampled_from(["1000", " 1a2b\x00", "", "\x00", b"1000", 5, None])
    | st.text(max_size=8),
    Tag.MESSAGE_STATE: st.sampled_from([*MessageState, 0, 9, 99, True, b"\x02", b"", "2", None]),
    Tag.NETWORK_ERROR_CODE: st.sampled_from(
        [NetworkErrorCode(3, 5), (1, 2), (1, "2"), (1, 2, 3), b"\x03\x00\x05", b"\x03", None, 7]
    ),
}


@st.composite
def tlv_maps(draw: st.DrawFn) -> dict[int, Any] | None:
    if draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from([None, {}]))
    tags = draw(st.lists(st.sampled_from(list(TLV_VALUES)), unique=True))
    return {tag: draw(TLV_VALUES[tag]) for tag in tags}


@settings(max_examples=3000, deadline=None)
@given(text=receipt_texts() | st.text(max_size=60), tlvs=tlv_maps(), as_bytes=st.booleans())
def test_parse_receipt_reads_as_the_reference(
    text: str, tlvs: dict[int, Any] | None, as_bytes: bool
) -> None:
    message: str | bytes = text.encode("latin-1", "replace") if as_bytes else text
    assert outcome(receipts.parse_receipt, message, tlvs) == outcome(reference_parse, message, tlvs)


@settings(max_examples=1000, deadline=None)
@given(value=DATES | st.none())
def test_cached_dates_and_counts_read_as_the_reference(value: str | None) -> None:
    for _ in range(2):  # a miss, then a hit
        assert receipts._date(value) == reference_date(value)
        assert receipts._count(value) == reference_count(value)


IDS = st.sampled_from(["0001A2B3", "107187", "0", "00", " 1a ", "", " ", "1_0", "0x1f", "١٢"])


@settings(max_examples=1000, deadline=None)
@given(
    raw=IDS | st.text(alphabet="0123456789abcdefABCDEFgx_ \t", max_size=10),
    id_format=st.sampled_from(["hex", "decimal", "string", "HEX", ""]),
)
def test_normalise_message_id_as_the_reference(raw: str, id_format: str) -> None:
    expected = outcome(reference_normalise, raw, id_format)
    assert outcome(receipts.normalise_message_id, raw, id_format) == expected


@pytest.mark.parametrize(
    "text",
    [
        "id:1000 sub:001 dlvrd:001 submit date:2605282026 done date:2605282026 stat:DELIVRD "
        "err:000 text:hello world",
        "id:1000 sub:001 dlvrd:001 submit date:2605282026 done date:2605282026 stat:DELIVRD "
        "err:000",
    ],
)
def test_the_usual_receipt_takes_the_one_match_path(text: str) -> None:
    assert receipts._CANONICAL.fullmatch(text) is not None
    assert receipts._fields(text) == receipts._scan_fields(text)


def summary_of(message: bytes | str, tlvs: Mapping[int, object] | None) -> tuple[Any, ...]:
    receipt = reference_parse(message, tlvs)
    return receipt.message_id, receipt.state, receipt.stat_text, receipt.error_code


@settings(max_examples=3000, deadline=None)
@given(text=receipt_texts() | st.text(max_size=60), tlvs=tlv_maps(), as_bytes=st.booleans())
def test_receipt_summary_is_the_reference_parse_in_brief(
    text: str, tlvs: dict[int, Any] | None, as_bytes: bool
) -> None:
    message: str | bytes = text.encode("latin-1", "replace") if as_bytes else text
    expected = outcome(summary_of, message, tlvs)
    assert outcome(receipts.receipt_summary, message, tlvs) == expected
