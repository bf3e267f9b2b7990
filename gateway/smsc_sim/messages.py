"""The deliver_sm PDUs the simulator originates: delivery receipts and MO messages."""

from __future__ import annotations

import time
from collections.abc import Sequence

from gateway.smpp.constants import DataCoding, EsmClass, MessageState, Tag
from gateway.smpp.pdu import DeliverSm, NetworkErrorCode
from gateway.smpp.reassembly import UdhError, parse_udh
from gateway.smpp.segmentation import SegmentMethod, segment
from gateway.smpp.text import DEFAULT_ALLOWED, TextDecodeError, decode_text, encode_text

GSM_NETWORK = 3  # network_type of the network_error_code TLV
PREVIEW_LENGTH = 20


def message_preview(
    short_message: bytes, esm_class: int, data_coding: int, tlvs: dict[int, object]
) -> str:
    """The first 20 characters of a submitted message for a receipt's text: field.

    Characters outside printable ASCII become "?" so the receipt stays plain GSM/ASCII text;
    undecodable content gives "".
    """
    payload = tlvs.get(Tag.MESSAGE_PAYLOAD) or short_message
    if not isinstance(payload, bytes):
        return ""
    try:
        if esm_class & EsmClass.UDHI:
            _, payload = parse_udh(payload)
        text = decode_text(data_coding, payload)
    except (UdhError, TextDecodeError, ValueError):
        return ""
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text[:PREVIEW_LENGTH])


def receipt_date(wall_time: float) -> str:
    """YYMMDDhhmm in UTC (receipts carry no time zone; UTC keeps runs comparable)."""
    return time.strftime("%y%m%d%H%M", time.gmtime(wall_time))


def receipt_text(
    message_id: str,
    delivered: bool,
    error: int,
    submitted_at: float,
    done_at: float,
    preview: str,
) -> str:
    """The SMPP 3.4 Appendix B receipt text."""
    return (
        f"id:{message_id} sub:001 dlvrd:{'001' if delivered else '000'} "
        f"submit date:{receipt_date(submitted_at)} done date:{receipt_date(done_at)} "
        f"stat:{'DELIVRD' if delivered else 'UNDELIV'} err:{0 if delivered else error:03d} "
        f"text:{preview}"
    )


def build_receipt(
    *,
    message_id: str,
    delivered: bool,
    error: int,
    submitted_at: float,
    done_at: float,
    preview: str,
    source: tuple[int, int, str],
    destination: tuple[int, int, str],
    include_tlvs: bool,
) -> DeliverSm:
    """A receipt deliver_sm; source and destination are the original message's (ton, npi,
    address), swapped here as the receipt travels back from the handset."""
    tlvs: dict[int, object] = {}
    if include_tlvs:
        tlvs[Tag.RECEIPTED_MESSAGE_ID] = message_id
        tlvs[Tag.MESSAGE_STATE] = (
            MessageState.DELIVERED if delivered else MessageState.UNDELIVERABLE
        )
        if not delivered:
            tlvs[Tag.NETWORK_ERROR_CODE] = NetworkErrorCode(GSM_NETWORK, error)
    text = receipt_text(message_id, delivered, error, submitted_at, done_at, preview)
    return DeliverSm(
        source_addr_ton=destination[0],
        source_addr_npi=destination[1],
        source_addr=destination[2],
        dest_addr_ton=source[0],
        dest_addr_npi=source[1],
        destination_addr=source[2],
        esm_class=EsmClass.SMSC_DELIVERY_RECEIPT,
        data_coding=DataCoding.SMSC_DEFAULT,
        short_message=text.encode("ascii", "replace"),
        tlvs=tlvs,
    )


def build_mo(
    text: str,
    *,
    source_addr: str,
    destination_addr: str,
    reference: int,
    segmentation: str | SegmentMethod = SegmentMethod.UDH8,
    encodings: Sequence[int] = DEFAULT_ALLOWED,
    source_ton: int = 1,
    source_npi: int = 1,
    dest_ton: int = 0,
    dest_npi: int = 0,
) -> list[DeliverSm]:
    """The deliver_sm PDUs (esm_class 0, plus UDHI for UDH parts) of one MO message.

    reference is reduced to the method's reference size; GSM text travels unpacked.
    """
    method = SegmentMethod(segmentation)
    reference %= 256 if method == SegmentMethod.UDH8 else 65536
    encoded = encode_text(text, encodings)
    return [
        DeliverSm(
            source_addr_ton=source_ton,
            source_addr_npi=source_npi,
            source_addr=source_addr,
            dest_addr_ton=dest_ton,
            dest_addr_npi=dest_npi,
            destination_addr=destination_addr,
            esm_class=EsmClass.UDHI if part.udhi else EsmClass.DEFAULT,
            data_coding=encoded.data_coding,
            short_message=part.short_message,
            tlvs=dict(part.tlvs),
        )
        for part in segment(encoded, method, reference)
    ]
