import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gateway.smpp.constants import DataCoding, Tag
from gateway.smpp.gsm0338 import can_encode, unpack_septets
from gateway.smpp.reassembly import parse_udh
from gateway.smpp.segmentation import (
    Segment,
    SegmentationError,
    SegmentMethod,
    parts_needed,
    segment,
)
from gateway.smpp.text import decode_text, encode_text

UDH_METHODS = [SegmentMethod.UDH8, SegmentMethod.UDH16]
LATIN_1 = (DataCoding.LATIN_1,)


def gsm(text, packed=False):
    return encode_text(text, allowed=(DataCoding.SMSC_DEFAULT,), packed=packed)


@pytest.mark.parametrize(
    ("encoded", "method", "parts"),
    [
        (gsm("a" * 160), SegmentMethod.UDH8, 1),
        (gsm("a" * 161), SegmentMethod.UDH8, 2),
        (gsm("a" * 153 * 2), SegmentMethod.UDH8, 2),
        (gsm("a" * (153 * 2 + 1)), SegmentMethod.UDH8, 3),
        (gsm("a" * 152 * 2), SegmentMethod.UDH16, 2),
        (gsm("a" * (152 * 2 + 1)), SegmentMethod.UDH16, 3),
        (gsm("a" * 320), SegmentMethod.SAR, 2),
        (gsm("a" * 321), SegmentMethod.SAR, 3),
        (gsm("a" * 1000), SegmentMethod.PAYLOAD, 1),
        (gsm("€" * 80), SegmentMethod.UDH8, 1),
        (gsm("€" * 80 + "a"), SegmentMethod.UDH8, 2),
        (encode_text("é" * 140, LATIN_1), SegmentMethod.UDH8, 1),
        (encode_text("é" * 141, LATIN_1), SegmentMethod.UDH8, 2),
        (encode_text("é" * 268, LATIN_1), SegmentMethod.UDH8, 2),
        (encode_text("é" * 269, LATIN_1), SegmentMethod.UDH8, 3),
        (encode_text("é" * 266, LATIN_1), SegmentMethod.UDH16, 2),
        (encode_text("é" * 267, LATIN_1), SegmentMethod.UDH16, 3),
        (encode_text("ж" * 70), SegmentMethod.UDH8, 1),
        (encode_text("ж" * 71), SegmentMethod.UDH8, 2),
        (encode_text("ж" * 67 * 2), SegmentMethod.UDH8, 2),
        (encode_text("ж" * (67 * 2 + 1)), SegmentMethod.UDH8, 3),
        (encode_text("ж" * 66 * 2), SegmentMethod.UDH16, 2),
        (encode_text("ж" * (66 * 2 + 1)), SegmentMethod.UDH16, 3),
        (encode_text("ж" * 140), SegmentMethod.SAR, 2),
        (encode_text("😀" * 35), SegmentMethod.UDH8, 1),
        (encode_text("😀" * 36), SegmentMethod.UDH8, 2),
        (encode_text("😀" * 67), SegmentMethod.UDH8, 3),  # 33 pairs per part, not 33.5
        (encode_text("😀" * 66), SegmentMethod.UDH8, 2),
    ],
)
def test_part_counts(encoded, method, parts):
    assert parts_needed(encoded, method) == parts
    assert len(segment(encoded, method, reference=7)) == parts


@pytest.mark.parametrize("method", list(SegmentMethod))
def test_single_message_has_no_header_or_tlvs(method):
    encoded = gsm("a" * 160)
    assert segment(encoded, method, reference=1) == [Segment(encoded.payload, False, {}, 1, 1)]


def test_udh8_parts():
    parts = segment(gsm("a" * 200), SegmentMethod.UDH8, reference=0xAB)
    assert [p.short_message[:6] for p in parts] == [
        bytes.fromhex("050003ab0201"),
        bytes.fromhex("050003ab0202"),
    ]
    assert [len(p.short_message) for p in parts] == [6 + 153, 6 + 47]
    assert all(p.udhi and p.tlvs == {} for p in parts)
    assert [(p.part_number, p.total_parts) for p in parts] == [(1, 2), (2, 2)]


def test_udh16_parts():
    parts = segment(encode_text("ж" * 100), SegmentMethod.UDH16, reference=0x1234)
    assert [p.short_message[:7] for p in parts] == [
        bytes.fromhex("06080412340201"),
        bytes.fromhex("06080412340202"),
    ]
    assert [len(p.short_message) - 7 for p in parts] == [132, 68]


def test_sar_parts():
    parts = segment(gsm("b" * 170), SegmentMethod.SAR, reference=0xBEEF)
    assert [p.short_message for p in parts] == [b"b" * 160, b"b" * 10]
    assert [p.tlvs for p in parts] == [
        {Tag.SAR_MSG_REF_NUM: 0xBEEF, Tag.SAR_TOTAL_SEGMENTS: 2, Tag.SAR_SEGMENT_SEQNUM: 1},
        {Tag.SAR_MSG_REF_NUM: 0xBEEF, Tag.SAR_TOTAL_SEGMENTS: 2, Tag.SAR_SEGMENT_SEQNUM: 2},
    ]
    assert not any(p.udhi for p in parts)


def test_payload_method():
    encoded = encode_text("ж" * 500)
    assert segment(encoded, SegmentMethod.PAYLOAD, reference=-1) == [
        Segment(b"", False, {Tag.MESSAGE_PAYLOAD: encoded.payload}, 1, 1)
    ]


def test_escape_is_not_split():
    parts = segment(gsm("a" * 152 + "€" + "a" * 10), SegmentMethod.UDH8, reference=1)
    assert [p.short_message[6:] for p in parts] == [b"a" * 152, b"\x1b\x65" + b"a" * 10]


def test_surrogate_pair_is_not_split():
    parts = segment(encode_text("a" * 66 + "😀" + "é" * 5), SegmentMethod.UDH8, reference=1)
    assert [decode_text(8, p.short_message[6:]) for p in parts] == ["a" * 66, "😀" + "é" * 5]


def test_packed_gsm_parts_are_aligned_after_udh():
    text = "x" * 153 + "y" * 10 + "z"
    parts = segment(gsm(text, packed=True), SegmentMethod.UDH8, reference=3)
    first = parts[0].short_message
    assert len(first) == 140
    assert first[6] & 1 == 0  # the fill bit
    assert unpack_septets(first[6:], 153, fill_bits=1) == b"x" * 153
    assert (
        decode_text(0, parts[1].short_message[6:], packed=True, septets=11, fill_bits=1)
        == "y" * 10 + "z"
    )
    parts16 = segment(gsm(text, packed=True), SegmentMethod.UDH16, reference=3)
    assert len(parts16[0].short_message) == 7 + 133  # 152 septets, no fill bits
    assert unpack_septets(parts16[0].short_message[7:], 152) == b"x" * 152


@pytest.mark.parametrize(
    ("method", "reference"),
    [
        (SegmentMethod.UDH8, 256),
        (SegmentMethod.UDH8, -1),
        (SegmentMethod.UDH16, 0x10000),
        (SegmentMethod.SAR, 0x10000),
    ],
)
def test_reference_must_fit(method, reference):
    with pytest.raises(SegmentationError):
        segment(gsm("a"), method, reference)


def test_at_most_255_parts():
    assert len(segment(gsm("a" * 153 * 255), SegmentMethod.UDH8, 1)) == 255
    encoded = gsm("a" * (153 * 255 + 1))
    assert parts_needed(encoded, SegmentMethod.UDH8) == 256
    with pytest.raises(SegmentationError, match="256"):
        segment(encoded, SegmentMethod.UDH8, 1)


gsm_alphabet = st.sampled_from([chr(c) for c in range(0x2100) if can_encode(chr(c))])
texts = st.one_of(
    st.text(gsm_alphabet, max_size=700),
    st.text(st.sampled_from("a€{"), max_size=700),
    st.text(st.sampled_from("aé😀ж"), max_size=400),
    st.text(max_size=300).filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t)),
)


@settings(max_examples=150, deadline=None)
@given(texts, st.sampled_from(list(SegmentMethod)), st.booleans())
def test_parts_rejoin_and_decode_alone(text, method, packed):
    # Packed parts carry no septet count, so a part ending in '@' can be ambiguous.
    assume(not (packed and "@" in text))
    encoded = encode_text(text, packed=packed)
    parts = segment(encoded, method, reference=9)
    assert len(parts) == parts_needed(encoded, method)
    decoded = []
    for part in parts:
        body = part.tlvs.get(Tag.MESSAGE_PAYLOAD, part.short_message)
        fill_bits = 0
        if part.udhi:
            concat, body = parse_udh(part.short_message)
            assert (concat.sequence, concat.total) == (part.part_number, part.total_parts)
            fill_bits = 1 if method == SegmentMethod.UDH8 and encoded.packed else 0
        decoded.append(
            decode_text(encoded.data_coding, body, packed=encoded.packed, fill_bits=fill_bits)
        )
    assert "".join(decoded) == text
