"""Choosing a data_coding for outgoing text and decoding incoming short messages.

data_coding values are those of SMPP 3.4 section 5.2.19. UCS-2 is carried as UTF-16BE, so
characters outside the Basic Multilingual Plane (emoji) travel as surrogate pairs, which is what
handsets expect in practice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.smpp import gsm0338
from gateway.smpp.constants import DataCoding
from gateway.smpp.gsm0338 import TextDecodeError, TextEncodeError

__all__ = [
    "DEFAULT_ALLOWED",
    "EncodedText",
    "TextDecodeError",
    "TextEncodeError",
    "decode_text",
    "encode_text",
]

DEFAULT_ALLOWED: tuple[int, ...] = (DataCoding.SMSC_DEFAULT, DataCoding.LATIN_1, DataCoding.UCS2)

# Octet encodings: one unit per octet (IA5 is ASCII, SMPP 3.4 5.2.19).
_OCTET_CODECS: dict[int, str] = {
    DataCoding.IA5: "ascii",
    DataCoding.LATIN_1: "latin-1",
    DataCoding.CYRILLIC: "iso8859-5",
    DataCoding.LATIN_HEBREW: "iso8859-8",
}
_BINARY = (DataCoding.OCTET_UNSPECIFIED, DataCoding.OCTET_UNSPECIFIED_2)
# Enum members read per message, as module globals (docs/ARCHITECTURE.md, "Per-message objects")
_GSM = DataCoding.SMSC_DEFAULT


# not frozen: built per message (docs/ARCHITECTURE.md, "Per-message objects")
@dataclass
class EncodedText:
    """Text encoded for a short message.

    units counts septets for GSM (extension characters count two), octets for the octet
    encodings and 16-bit code units for UCS-2 (a surrogate pair counts two). payload holds one
    septet per octet unless packed, which only GSM text can be.
    """

    data_coding: int
    payload: bytes
    units: int
    packed: bool = False


def encode_text(
    text: str, allowed: Sequence[int] = DEFAULT_ALLOWED, packed: bool = False
) -> EncodedText:
    """Encode text with the first data_coding in allowed that represents all of it.

    allowed lists preferences, cheapest first; supported are SMSC_DEFAULT (GSM 03.38), IA5,
    LATIN_1 and UCS2. packed asks for GSM septets packed into octets. When no allowed coding
    fits, the TextEncodeError of the last one tried is raised.
    """
    if not allowed:
        raise ValueError("no data_coding allowed")
    for data_coding in allowed[:-1]:
        try:
            return _encode_as(text, data_coding, packed)
        except TextEncodeError:
            continue
    return _encode_as(text, allowed[-1], packed)


def _encode_as(text: str, data_coding: int, packed: bool) -> EncodedText:
    if data_coding == _GSM:
        septets = gsm0338.encode_unpacked(text)
        payload = gsm0338.pack_septets(septets) if packed else septets
        return EncodedText(data_coding, payload, len(septets), packed)
    if data_coding == DataCoding.UCS2:
        payload = _codec_encode(text, "utf-16-be")
        return EncodedText(data_coding, payload, len(payload) // 2)
    if data_coding in (DataCoding.IA5, DataCoding.LATIN_1):
        payload = _codec_encode(text, _OCTET_CODECS[data_coding])
        return EncodedText(data_coding, payload, len(payload))
    raise ValueError(f"cannot encode text as data_coding {data_coding}")


def _codec_encode(text: str, codec: str) -> bytes:
    try:
        return text.encode(codec)
    except UnicodeEncodeError as exc:
        raise TextEncodeError(text[exc.start], exc.start, codec) from None


def decode_text(
    data_coding: int,
    payload: bytes,
    packed: bool = False,
    septets: int | None = None,
    fill_bits: int = 0,
) -> str:
    """Decode a short message payload (after any user data header).

    GSM text (data_coding 0, or a 0xF0-0xFF message class coding with the 7-bit alphabet) is
    read one septet per octet unless packed. For packed text, septets gives the exact count and
    fill_bits the padding after a user data header; without septets the count is what the
    octets hold, and a final zero septet that exactly fills the last octet is taken as padding
    (the ambiguity of TS 23.038 6.1.2.3.1: a real trailing '@' is lost then).

    Binary codings (2, 4, and 0xF0-0xFF with the 8-bit data bit 0x04 set) and codings this
    gateway does not know raise TextDecodeError rather than guess: a wrongly decoded message is
    worse than a rejected one, and a caller that wants Latin-1 as a fallback can ask for it
    explicitly.
    """
    if data_coding == DataCoding.SMSC_DEFAULT or _is_message_class_gsm(data_coding):
        return _decode_gsm(payload, packed, septets, fill_bits)
    if data_coding == DataCoding.UCS2:
        if len(payload) % 2:
            raise TextDecodeError(f"UCS-2 payload of odd length {len(payload)}")
        return _codec_decode(payload, "utf-16-be")
    if data_coding in _OCTET_CODECS:
        return _codec_decode(payload, _OCTET_CODECS[data_coding])
    if data_coding in _BINARY or data_coding >= 0xF0:
        raise TextDecodeError(f"data_coding {data_coding:#04x} is binary data, not text")
    raise TextDecodeError(f"unsupported data_coding {data_coding:#04x}")


def _is_message_class_gsm(data_coding: int) -> bool:
    # Coding group 1111 of TS 23.038 section 4: bit 2 clear selects the GSM 7-bit alphabet.
    return data_coding >= 0xF0 and not data_coding & 0x04


def _decode_gsm(payload: bytes, packed: bool, septets: int | None, fill_bits: int) -> str:
    if not packed:
        return gsm0338.decode_unpacked(payload)
    if septets is not None:
        return gsm0338.decode_unpacked(gsm0338.unpack_septets(payload, septets, fill_bits))
    available = max(0, 8 * len(payload) - fill_bits)
    data = gsm0338.unpack_septets(payload, available // 7, fill_bits)
    if available % 7 == 0 and data.endswith(b"\x00"):
        data = data[:-1]
    return gsm0338.decode_unpacked(data)


def _codec_decode(payload: bytes, codec: str) -> str:
    try:
        return payload.decode(codec)
    except UnicodeDecodeError as exc:
        raise TextDecodeError(f"invalid {codec} at octet {exc.start}: {exc.reason}") from None
