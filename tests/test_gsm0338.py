import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.smpp.gsm0338 import (
    TextDecodeError,
    TextEncodeError,
    can_encode,
    decode_unpacked,
    encode_unpacked,
    pack_septets,
    septet_count,
    unpack_septets,
)

# TS 23.038 6.2.1, written as Unicode code points, row by row (0x1B, the escape, is None).
BASE = [
    0x0040, 0x00A3, 0x0024, 0x00A5, 0x00E8, 0x00E9, 0x00F9, 0x00EC,
    0x00F2, 0x00C7, 0x000A, 0x00D8, 0x00F8, 0x000D, 0x00C5, 0x00E5,
    0x0394, 0x005F, 0x03A6, 0x0393, 0x039B, 0x03A9, 0x03A0, 0x03A8,
    0x03A3, 0x0398, 0x039E, None, 0x00C6, 0x00E6, 0x00DF, 0x00C9,
    0x0020, 0x0021, 0x0022, 0x0023, 0x00A4, 0x0025, 0x0026, 0x0027,
    0x0028, 0x0029, 0x002A, 0x002B, 0x002C, 0x002D, 0x002E, 0x002F,
    0x0030, 0x0031, 0x0032, 0x0033, 0x0034, 0x0035, 0x0036, 0x0037,
    0x0038, 0x0039, 0x003A, 0x003B, 0x003C, 0x003D, 0x003E, 0x003F,
    0x00A1, 0x0041, 0x0042, 0x0043, 0x0044, 0x0045, 0x0046, 0x0047,
    0x0048, 0x0049, 0x004A, 0x004B, 0x004C, 0x004D, 0x004E, 0x004F,
    0x0050, 0x0051, 0x0052, 0x0053, 0x0054, 0x0055, 0x0056, 0x0057,
    0x0058, 0x0059, 0x005A, 0x00C4, 0x00D6, 0x00D1, 0x00DC, 0x00A7,
    0x00BF, 0x0061, 0x0062, 0x0063, 0x0064, 0x0065, 0x0066, 0x0067,
    0x0068, 0x0069, 0x006A, 0x006B, 0x006C, 0x006D, 0x006E, 0x006F,
    0x0070, 0x0071, 0x0072, 0x0073, 0x0074, 0x0075, 0x0076, 0x0077,
    0x0078, 0x0079, 0x007A, 0x00E4, 0x00F6, 0x00F1, 0x00FC, 0x00E0,
]  # fmt: skip
# TS 23.038 6.2.1.1
EXTENSION = {
    0x0A: 0x000C,
    0x14: 0x005E,
    0x28: 0x007B,
    0x29: 0x007D,
    0x2F: 0x005C,
    0x3C: 0x005B,
    0x3D: 0x007E,
    0x3E: 0x005D,
    0x40: 0x007C,
    0x65: 0x20AC,
}
GSM_CHARS = [chr(c) for c in BASE if c is not None] + [chr(c) for c in EXTENSION.values()]


def test_table_sizes():
    assert len(BASE) == 128
    assert len(GSM_CHARS) == len(set(GSM_CHARS)) == 137


@pytest.mark.parametrize("code", [c for c in range(128) if c != 0x1B])
def test_base_table(code):
    char = chr(BASE[code])
    assert encode_unpacked(char) == bytes([code])
    assert decode_unpacked(bytes([code])) == char
    assert septet_count(char) == 1


@pytest.mark.parametrize("code", sorted(EXTENSION))
def test_extension_table(code):
    char = chr(EXTENSION[code])
    assert encode_unpacked(char) == bytes([0x1B, code])
    assert decode_unpacked(bytes([0x1B, code])) == char
    assert septet_count(char) == 2


def test_nothing_else_is_encodable():
    for code_point in range(0x3000):
        assert can_encode(chr(code_point)) == (chr(code_point) in GSM_CHARS)


@pytest.mark.parametrize("char", ["`", "ç", "\x1b", "\t", "\u00a0", "😀", "\u0308"])
def test_unrepresentable_characters(char):
    assert not can_encode(char)
    with pytest.raises(TextEncodeError) as info:
        encode_unpacked("ab" + char)
    assert info.value.char == char
    assert info.value.position == 2
    assert "position 2" in str(info.value)


def test_encode_error_survives_pickling():
    error = TextEncodeError("`", 3, "GSM 03.38")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.char, copy.position, copy.encoding) == ("`", 3, "GSM 03.38")


def test_septet_count():
    assert septet_count("") == 0
    assert septet_count("Price: 5€ {x}") == 10 + 3 * 2


def test_undefined_escape_shows_base_character():
    assert decode_unpacked(bytes([0x1B, 0x41])) == "A"
    assert decode_unpacked(bytes([0x1B, 0x00])) == "@"


def test_escape_escape_and_trailing_escape_show_space():
    assert decode_unpacked(bytes([0x41, 0x1B, 0x1B, 0x42])) == "A B"
    assert decode_unpacked(bytes([0x41, 0x1B])) == "A "


def test_octet_above_septet_range_is_rejected():
    with pytest.raises(TextDecodeError, match="position 1"):
        decode_unpacked(bytes([0x41, 0x80]))


def test_known_packing_vector():
    septets = encode_unpacked("hellohello")
    assert pack_septets(septets) == bytes.fromhex("e8329bfd4697d9ec37")
    assert unpack_septets(bytes.fromhex("e8329bfd4697d9ec37"), 10) == septets


def test_packing_with_fill_bit():
    # One fill bit shifts the whole stream left by one.
    packed = pack_septets(bytes([0x7F, 0x01]), fill_bits=1)
    assert packed == bytes([0xFE, 0x01])
    assert unpack_septets(packed, 2, fill_bits=1) == bytes([0x7F, 0x01])


def test_packed_lengths():
    assert pack_septets(b"") == b""
    assert pack_septets(b"", fill_bits=1) == b""
    assert len(pack_septets(bytes(8))) == 7
    assert len(pack_septets(bytes(160))) == 140
    assert len(pack_septets(bytes(153), fill_bits=1)) == 134


def test_packing_rejects_bad_input():
    with pytest.raises(ValueError):
        pack_septets(bytes([0x80]))
    with pytest.raises(ValueError):
        pack_septets(b"a", fill_bits=7)
    with pytest.raises(TextDecodeError):
        unpack_septets(bytes(7), 9)


septet_strings = st.binary(max_size=400).map(lambda b: bytes(x & 0x7F for x in b))


@given(septet_strings, st.integers(0, 6))
def test_pack_unpack_round_trip(septets, fill_bits):
    packed = pack_septets(septets, fill_bits)
    bits = fill_bits + 7 * len(septets) if septets else 0
    assert len(packed) == (bits + 7) // 8
    assert unpack_septets(packed, len(septets), fill_bits) == septets


@given(st.text(alphabet=GSM_CHARS, max_size=300))
def test_text_round_trip(text):
    septets = encode_unpacked(text)
    assert len(septets) == septet_count(text)
    assert decode_unpacked(septets) == text


def _reference_septets(text):
    """Character by character from the tables above (TS 23.038 6.2.1 and 6.2.1.1)."""
    out = bytearray()
    for ch in text:
        if ord(ch) in BASE:
            out.append(BASE.index(ord(ch)))
        else:
            out += bytes([0x1B, next(k for k, v in EXTENSION.items() if v == ord(ch))])
    return bytes(out)


@given(
    st.text(alphabet=GSM_CHARS, max_size=300)
    | st.text(alphabet=[chr(c) for c in BASE if c is not None and c < 256], max_size=300)
)
def test_encoding_matches_the_tables_on_every_path(text):
    # Latin-1 base-table text takes the bytes.translate path; Greek or extension characters
    # the general one: both must give the septets the tables give
    assert encode_unpacked(text) == _reference_septets(text)


@given(st.text(max_size=50))
def test_any_text_is_encoded_or_refused_as_the_tables_say(text):
    encodable = all(ord(ch) in BASE or ord(ch) in EXTENSION.values() for ch in text)
    assert can_encode(text) == encodable
    if encodable:
        assert encode_unpacked(text) == _reference_septets(text)
    else:
        with pytest.raises(TextEncodeError):
            encode_unpacked(text)
