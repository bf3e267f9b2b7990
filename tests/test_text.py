import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.smpp.constants import DataCoding
from gateway.smpp.gsm0338 import can_encode, pack_septets
from gateway.smpp.text import (
    EncodedText,
    TextDecodeError,
    TextEncodeError,
    decode_text,
    encode_text,
)


def test_pure_gsm_text_is_gsm():
    encoded = encode_text("Hello @ home")
    assert encoded == EncodedText(0, bytes.fromhex("48656c6c6f200020686f6d65"), 12, False)


def test_euro_counts_two_septets():
    encoded = encode_text("5€")
    assert encoded.data_coding == DataCoding.SMSC_DEFAULT
    assert encoded.payload == bytes([0x35, 0x1B, 0x65])
    assert encoded.units == 3


def test_capital_c_cedilla_is_gsm_small_is_latin_1():
    assert encode_text("Ç").data_coding == DataCoding.SMSC_DEFAULT
    encoded = encode_text("ç")
    assert encoded == EncodedText(DataCoding.LATIN_1, b"\xe7", 1)


def test_backtick_falls_back_to_latin_1():
    assert encode_text("`").data_coding == DataCoding.LATIN_1


def test_cyrillic_is_ucs2():
    encoded = encode_text("Привет")
    assert encoded.data_coding == DataCoding.UCS2
    assert encoded.payload == "Привет".encode("utf-16-be")
    assert encoded.units == 6


def test_emoji_is_a_surrogate_pair():
    encoded = encode_text("a😀")
    assert encoded.data_coding == DataCoding.UCS2
    assert encoded.payload == bytes.fromhex("0061 d83d de00")
    assert encoded.units == 3


def test_allowed_order_is_respected():
    assert encode_text("abc", allowed=(DataCoding.UCS2,)).data_coding == DataCoding.UCS2
    assert encode_text("abc", allowed=(DataCoding.LATIN_1, 0)).data_coding == DataCoding.LATIN_1
    assert encode_text("a{", allowed=(DataCoding.IA5,)).payload == b"a{"


def test_no_allowed_coding_fits():
    with pytest.raises(TextEncodeError) as info:
        encode_text("x😀", allowed=(DataCoding.SMSC_DEFAULT, DataCoding.LATIN_1))
    assert info.value.char == "😀"
    assert info.value.position == 1
    with pytest.raises(TextEncodeError):
        encode_text("\ud800", allowed=(DataCoding.UCS2,))


def test_unsupported_or_empty_allowed():
    with pytest.raises(ValueError):
        encode_text("a", allowed=())
    with pytest.raises(ValueError):
        encode_text("a", allowed=(DataCoding.JIS,))


def test_packed_gsm():
    encoded = encode_text("hellohello", packed=True)
    assert encoded == EncodedText(0, bytes.fromhex("e8329bfd4697d9ec37"), 10, True)
    assert encode_text("é", packed=True, allowed=(DataCoding.UCS2,)).packed is False


def test_decode_codings():
    assert decode_text(0, bytes([0x48, 0x1B, 0x65, 0x00])) == "H€@"
    assert decode_text(1, b"plain") == "plain"
    assert decode_text(3, b"\xe7a") == "ça"
    assert decode_text(6, b"\xbf") == "П"
    assert decode_text(8, bytes.fromhex("d83dde00")) == "😀"
    assert decode_text(0xF1, b"A") == "A"  # message class 1, GSM alphabet


@pytest.mark.parametrize("data_coding", [2, 4, 0xF4, 0xF7])
def test_binary_is_not_text(data_coding):
    with pytest.raises(TextDecodeError, match="binary"):
        decode_text(data_coding, b"\x00\x01")


@pytest.mark.parametrize(
    ("data_coding", "payload"),
    [
        (5, b"abc"),  # JIS: not supported, not guessed
        (0x0E, b"abc"),
        (1, b"\x80"),  # IA5 is 7-bit
        (0, b"\x80"),
        (8, b"\x00a\x00"),  # odd length
        (8, bytes.fromhex("d83d0041")),  # high surrogate without low
        (8, bytes.fromhex("de00")),  # lone low surrogate
    ],
)
def test_decode_errors(data_coding, payload):
    with pytest.raises(TextDecodeError):
        decode_text(data_coding, payload)


def test_decode_packed_with_count_and_fill_bits():
    packed = pack_septets(bytes([0x41, 0x00]), fill_bits=1)
    assert decode_text(0, packed, packed=True, septets=2, fill_bits=1) == "A@"


def test_decode_packed_without_count():
    assert decode_text(0, pack_septets(bytes([0x41] * 8)), packed=True) == "A" * 8
    assert decode_text(0, pack_septets(bytes([0x41] * 6)), packed=True) == "A" * 6
    assert decode_text(0, b"", packed=True) == ""
    # Seven septets leave seven spare bits that read as a trailing '@': taken as padding, so a
    # real trailing '@' in eight septets is lost without the count.
    assert decode_text(0, pack_septets(bytes([0x41] * 7)), packed=True) == "A" * 7
    assert decode_text(0, pack_septets(bytes([0x41] * 7 + [0])), packed=True) == "A" * 7


gsm_alphabet = st.sampled_from([chr(c) for c in range(0x2100) if can_encode(chr(c))])


@given(st.text(max_size=200))
def test_encode_decode_round_trip(text):
    try:
        encoded = encode_text(text)
    except TextEncodeError:
        # Only text with lone surrogates has no encoding at all.
        assert any(0xD800 <= ord(c) <= 0xDFFF for c in text)
        return
    assert decode_text(encoded.data_coding, encoded.payload) == text


@given(st.text(gsm_alphabet, max_size=200))
def test_packed_round_trip(text):
    encoded = encode_text(text, packed=True)
    assert encoded.data_coding == DataCoding.SMSC_DEFAULT
    assert decode_text(0, encoded.payload, packed=True, septets=encoded.units) == text
