from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.smpp.constants import MessageState, Tag
from gateway.smpp.receipts import (
    MessageIdError,
    Receipt,
    ReceiptParseError,
    ReceiptState,
    normalise_message_id,
    parse_receipt,
)

STANDARD = (
    b"id:0123456789 sub:001 dlvrd:001 submit date:2403151230 done date:2403151231 "
    b"stat:DELIVRD err:000 text:Hello world"
)


def test_standard_receipt():
    assert parse_receipt(STANDARD) == Receipt(
        message_id="0123456789",
        state=ReceiptState.DELIVERED,
        stat_text="DELIVRD",
        error_code="000",
        submitted=1,
        delivered=1,
        submit_date=datetime(2024, 3, 15, 12, 30),
        done_date=datetime(2024, 3, 15, 12, 31),
        text="Hello world",
        network_error=None,
    )


@pytest.mark.parametrize(
    ("raw", "message_id", "state", "stat_text", "err"),
    [
        # Upper-case keys, 12-digit dates
        (
            "ID:a1b2c3 SUB:001 DLVRD:000 SUBMIT DATE:240315123001 DONE DATE:240315123502 "
            "STAT:UNDELIV ERR:001 TEXT:",
            "a1b2c3",
            ReceiptState.UNDELIVERABLE,
            "UNDELIV",
            "001",
        ),
        # Underscored date keys and mixed case
        (
            "id:77 Sub:1 Dlvrd:1 submit_date:2403151230 done_date:2403151231 Stat:delivrd Err:0",
            "77",
            ReceiptState.DELIVERED,
            "delivrd",
            "0",
        ),
        # Extra spaces around and after colons
        (
            "id: 5d2f  sub: 001  dlvrd: 001  submit date: 2403151230  done date: 2403151231  "
            "stat: EXPIRED  err: 000",
            "5d2f",
            ReceiptState.EXPIRED,
            "EXPIRED",
            "000",
        ),
        # No sub/dlvrd/dates/text at all
        ("id:998877 stat:REJECTD err:069", "998877", ReceiptState.REJECTED, "REJECTD", "069"),
        # Full-word stat values
        ("id:1 stat:DELIVERED", "1", ReceiptState.DELIVERED, "DELIVERED", None),
        ("id:2 stat:UNDELIVERABLE err:11", "2", ReceiptState.UNDELIVERABLE, "UNDELIVERABLE", "11"),
        ("id:3 stat:FAILED err:34", "3", ReceiptState.UNDELIVERABLE, "FAILED", "34"),
        ("id:4 stat:ACCEPTD", "4", ReceiptState.ACCEPTED, "ACCEPTD", None),
        ("id:5 stat:ENROUTE", "5", ReceiptState.ENROUTE, "ENROUTE", None),
        ("id:6 stat:DELETED", "6", ReceiptState.DELETED, "DELETED", None),
        ("id:7 stat:UNKNOWN", "7", ReceiptState.UNKNOWN, "UNKNOWN", None),
        # A stat nobody defined keeps its text and maps to UNKNOWN
        ("id:8 stat:BLOCKED err:999", "8", ReceiptState.UNKNOWN, "BLOCKED", "999"),
        # Fields out of the usual order, no stat
        ("err:000 id:abc-DEF_01 dlvrd:001 sub:001", "abc-DEF_01", ReceiptState.UNKNOWN, "", "000"),
        # UUID-shaped id and a NUL terminator left in by the peer
        (
            "id:9f8e7d6c-1111-2222-3333-444455556666 stat:DELIVRD err:000\x00",
            "9f8e7d6c-1111-2222-3333-444455556666",
            ReceiptState.DELIVERED,
            "DELIVRD",
            "000",
        ),
    ],
)
def test_receipt_variants(raw, message_id, state, stat_text, err):
    receipt = parse_receipt(raw)
    assert (receipt.message_id, receipt.state, receipt.stat_text, receipt.error_code) == (
        message_id,
        state,
        stat_text,
        err,
    )


def test_text_may_contain_colons_and_keys():
    receipt = parse_receipt("id:42 stat:DELIVRD err:000 text:Code: 1234 stat:FAKE id:9")
    assert receipt.text == "Code: 1234 stat:FAKE id:9"
    assert (receipt.message_id, receipt.stat_text) == ("42", "DELIVRD")


def test_bad_numbers_and_dates_become_none():
    receipt = parse_receipt("id:1 sub:xx dlvrd:-1 submit date:2413151230 done date:24031512")
    assert (receipt.submitted, receipt.delivered) == (None, None)
    assert (receipt.submit_date, receipt.done_date) == (None, None)


def test_tlvs_take_precedence():
    receipt = parse_receipt(
        STANDARD,
        {
            Tag.RECEIPTED_MESSAGE_ID: "ABC123",
            Tag.MESSAGE_STATE: MessageState.UNDELIVERABLE,
            Tag.NETWORK_ERROR_CODE: b"\x03\x00\x22",
        },
    )
    assert receipt.message_id == "ABC123"
    assert receipt.state == ReceiptState.UNDELIVERABLE
    assert receipt.stat_text == "DELIVRD"  # still what the carrier wrote
    assert receipt.network_error == (3, 34)


@pytest.mark.parametrize(("value", "state"), [(s.value, s.name) for s in MessageState])
def test_every_message_state(value, state):
    receipt = parse_receipt(b"", {Tag.RECEIPTED_MESSAGE_ID: b"x1\x00", Tag.MESSAGE_STATE: value})
    assert receipt.message_id == "x1"
    assert receipt.state == ReceiptState[state]


def test_tlv_only_receipt_with_tuple_network_error():
    receipt = parse_receipt(
        b"",
        {
            Tag.RECEIPTED_MESSAGE_ID: "77",
            Tag.MESSAGE_STATE: b"\x02",
            Tag.NETWORK_ERROR_CODE: (1, 5),
        },
    )
    assert (receipt.message_id, receipt.state, receipt.network_error) == (
        "77",
        ReceiptState.DELIVERED,
        (1, 5),
    )
    assert receipt.text is None and receipt.error_code is None


def test_network_error_from_the_codec_type():
    from gateway.smpp.pdu import NetworkErrorCode

    tlvs = {Tag.RECEIPTED_MESSAGE_ID: "1", Tag.NETWORK_ERROR_CODE: NetworkErrorCode(3, 0x0101)}
    assert parse_receipt(b"", tlvs).network_error == (3, 0x0101)


def test_unusable_tlvs_are_ignored():
    receipt = parse_receipt(
        "id:9 stat:EXPIRED",
        {Tag.RECEIPTED_MESSAGE_ID: "", Tag.MESSAGE_STATE: 0, Tag.NETWORK_ERROR_CODE: b"\x01"},
    )
    assert (receipt.message_id, receipt.state, receipt.network_error) == (
        "9",
        ReceiptState.EXPIRED,
        None,
    )


@pytest.mark.parametrize("raw", [b"", "stat:DELIVRD err:000", "id: sub:001", b"hello there"])
def test_no_message_id(raw):
    with pytest.raises(ReceiptParseError):
        parse_receipt(raw)


def test_normalise_hex_and_decimal_agree():
    assert normalise_message_id("0001A2B3", "hex") == "1a2b3"
    assert normalise_message_id(str(0x1A2B3), "decimal") == "1a2b3"
    assert normalise_message_id(" 00ff ", "hex") == normalise_message_id("255", "decimal")
    assert normalise_message_id("0000", "hex") == "0"
    assert normalise_message_id("0", "decimal") == "0"


def test_normalise_string_ids():
    assert normalise_message_id("  AbC-01 ", "string") == "AbC-01"


@pytest.mark.parametrize(
    ("raw", "id_format"),
    [
        ("12G4", "hex"),
        ("0x12", "hex"),
        ("1_000", "decimal"),
        ("12a", "decimal"),
        ("-5", "decimal"),
        ("١٢", "decimal"),  # non-ASCII digits
        ("", "hex"),
        ("   ", "string"),
        ("12", "octal"),
    ],
)
def test_normalise_rejects(raw, id_format):
    with pytest.raises(MessageIdError):
        normalise_message_id(raw, id_format)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789", min_size=10, max_size=12).filter(lambda v: len(v) != 11))
def test_receipt_dates_read_as_strptime_would(value: str) -> None:
    from gateway.smpp.receipts import _date

    try:
        expected = datetime.strptime(value, "%y%m%d%H%M%S" if len(value) == 12 else "%y%m%d%H%M")
    except ValueError:
        expected = None
    assert _date(value) == expected


_TOKEN = st.text(alphabet="0123456789abcdefABCDEF:_-x é", max_size=12)


@st.composite
def _receipt_texts(draw: st.DrawFn) -> str:
    values = [draw(_TOKEN) for _ in range(7)]
    keys = ["id:", " sub:", " dlvrd:", " submit date:", " done date:", " stat:", " err:"]
    text = "".join(k + v for k, v in zip(keys, values, strict=True))
    tail = draw(st.sampled_from(["", " text:", " Text:", " TEXT:", " text: ", "text:"]))
    if tail:
        text += tail + draw(st.text(max_size=30))
    if draw(st.booleans()):  # and now and then something a carrier might do to it
        cut = draw(st.integers(0, len(text)))
        text = (
            text[:cut]
            + draw(st.sampled_from(["", " ", "  ", "\n", "stat:", "id:", "_"]))
            + (text[cut:])
        )
    return text


@settings(max_examples=2000)
@given(_receipt_texts())
def test_the_canonical_fast_path_reads_what_the_general_scan_reads(text: str) -> None:
    from gateway.smpp.receipts import _fields, _scan_fields

    assert _fields(text) == _scan_fields(text)
