"""Splitting long text into concatenated short messages.

Sizes follow TS 23.040 section 9.2.3.24.1: a short message carries 140 octets of user data,
i.e. 160 GSM septets, 140 octets or 70 UCS-2 code units. A concatenation user data header takes
6 octets (8-bit reference) or 7 octets (16-bit reference) of that, leaving 153/152 septets,
134/133 octets or 67/66 code units per part. SAR parts carry their concatenation data in TLVs,
not in the user data, so each keeps the full 160/140/70. An escape sequence or a UTF-16
surrogate pair is never split across parts; the part before it is one unit shorter then.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from gateway.smpp import gsm0338
from gateway.smpp.constants import DataCoding, Tag
from gateway.smpp.text import EncodedText

MAX_PARTS = 255
_USER_DATA_OCTETS = 140


class SegmentMethod(StrEnum):
    UDH8 = "udh8"
    UDH16 = "udh16"
    SAR = "sar"
    PAYLOAD = "payload"


_UDH_LENGTH = {SegmentMethod.UDH8: 6, SegmentMethod.UDH16: 7}
# Enum members read per message, as module globals (docs/ARCHITECTURE.md, "Per-message objects")
_GSM = DataCoding.SMSC_DEFAULT
_UCS2 = DataCoding.UCS2
_PAYLOAD = SegmentMethod.PAYLOAD
_UDH8 = SegmentMethod.UDH8


class SegmentationError(ValueError):
    """A message that cannot be segmented as asked."""


# not frozen: built per message (docs/ARCHITECTURE.md, "Per-message objects")
@dataclass
class Segment:
    """One short message to submit; the caller sets esm_class UDHI (0x40) when udhi is set."""

    short_message: bytes
    udhi: bool
    tlvs: dict[int, int | bytes]
    part_number: int
    total_parts: int


def parts_needed(encoded: EncodedText, method: SegmentMethod) -> int:
    """How many short messages segment() produces (it refuses more than MAX_PARTS)."""
    units, starts_pair = _units(encoded)
    if len(units) <= _single_limit(encoded) or method == SegmentMethod.PAYLOAD:
        return 1
    return len(_split(units, _part_limit(encoded, method), starts_pair))


def segment(encoded: EncodedText, method: SegmentMethod, reference: int) -> list[Segment]:
    """Split encoded text into short messages.

    Text that fits one short message gives one segment with neither header nor TLVs, whatever
    the method. Otherwise PAYLOAD gives one segment with an empty short_message and the whole
    payload in message_payload; UDH8, UDH16 and SAR give up to MAX_PARTS parts numbered from 1.
    reference must fit the method's reference field (8 bits for UDH8, 16 for UDH16 and SAR); it
    is not used by PAYLOAD. Packed GSM septets after a header start on a septet boundary.
    """
    _check_reference(method, reference)
    units, starts_pair = _units(encoded)
    if len(units) <= _single_limit(encoded):
        return [Segment(encoded.payload, False, {}, 1, 1)]
    if method == SegmentMethod.PAYLOAD:
        return [Segment(b"", False, {Tag.MESSAGE_PAYLOAD: encoded.payload}, 1, 1)]
    ranges = _split(units, _part_limit(encoded, method), starts_pair)
    total = len(ranges)
    if total > MAX_PARTS:
        raise SegmentationError(f"message needs {total} parts, more than {MAX_PARTS}")
    segments: list[Segment] = []
    for number, (start, end) in enumerate(ranges, start=1):
        if method == SegmentMethod.SAR:
            body = _body(encoded, units, start, end, udh_length=0)
            tlvs = _sar_tlvs(reference, total, number)
            segments.append(Segment(body, False, tlvs, number, total))
        else:
            udh = _udh(method, reference, total, number)
            body = _body(encoded, units, start, end, udh_length=len(udh))
            segments.append(Segment(udh + body, True, {}, number, total))
    return segments


def _check_reference(method: SegmentMethod, reference: int) -> None:
    if method == _PAYLOAD:
        return
    bits = 8 if method == _UDH8 else 16
    if not 0 <= reference < 1 << bits:
        raise SegmentationError(f"reference {reference} does not fit {bits} bits for {method}")


def _units(encoded: EncodedText) -> tuple[Sequence[int], Callable[[int], bool]]:
    """The payload as units and the test for a unit that starts an unsplittable pair."""
    payload = encoded.payload
    if encoded.data_coding == _GSM:
        septets = gsm0338.unpack_septets(payload, encoded.units) if encoded.packed else payload
        return septets, lambda unit: unit == gsm0338.ESCAPE
    if encoded.data_coding == _UCS2:
        if len(payload) % 2:
            raise SegmentationError(f"UCS-2 payload of odd length {len(payload)}")
        code_units = [payload[i] << 8 | payload[i + 1] for i in range(0, len(payload), 2)]
        return code_units, lambda unit: 0xD800 <= unit <= 0xDBFF
    return payload, lambda unit: False


def _single_limit(encoded: EncodedText) -> int:
    return _capacity(encoded, _USER_DATA_OCTETS)


def _part_limit(encoded: EncodedText, method: SegmentMethod) -> int:
    return _capacity(encoded, _USER_DATA_OCTETS - _UDH_LENGTH.get(method, 0))


def _capacity(encoded: EncodedText, octets: int) -> int:
    if encoded.data_coding == _GSM:
        return octets * 8 // 7
    if encoded.data_coding == _UCS2:
        return octets // 2
    return octets


def _split(
    units: Sequence[int], limit: int, starts_pair: Callable[[int], bool]
) -> list[tuple[int, int]]:
    """[start, end) unit ranges of at most limit units, never ending inside a pair."""
    ranges = []
    start = 0
    while start < len(units):
        end = start
        while end < len(units):
            step = 2 if starts_pair(units[end]) and end + 1 < len(units) else 1
            if end + step - start > limit:
                break
            end += step
        ranges.append((start, end))
        start = end
    return ranges


def _udh(method: SegmentMethod, reference: int, total: int, number: int) -> bytes:
    if method == SegmentMethod.UDH8:
        return bytes([5, 0x00, 3, reference, total, number])
    return bytes([6, 0x08, 4, reference >> 8, reference & 0xFF, total, number])


def _sar_tlvs(reference: int, total: int, number: int) -> dict[int, int | bytes]:
    return {
        Tag.SAR_MSG_REF_NUM: reference,
        Tag.SAR_TOTAL_SEGMENTS: total,
        Tag.SAR_SEGMENT_SEQNUM: number,
    }


def _body(
    encoded: EncodedText, units: Sequence[int], start: int, end: int, udh_length: int
) -> bytes:
    if encoded.data_coding == DataCoding.SMSC_DEFAULT:
        septets = bytes(units[start:end])
        if not encoded.packed:
            return septets
        # Fill bits pad the header to a septet boundary (TS 23.040 9.2.3.24).
        return gsm0338.pack_septets(septets, fill_bits=(7 - udh_length * 8 % 7) % 7)
    if encoded.data_coding == DataCoding.UCS2:
        return encoded.payload[2 * start : 2 * end]
    return encoded.payload[start:end]
