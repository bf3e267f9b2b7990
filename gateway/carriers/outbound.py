"""Building the submit_sm parts of one message from its text and the carrier profile."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.ops.carrier_profile import CarrierProfile
from gateway.smpp.constants import EsmClass
from gateway.smpp.pdu import SubmitSm
from gateway.smpp.segmentation import parts_needed, segment
from gateway.smpp.text import EncodedText, encode_text


@dataclass(slots=True)
class OutboundPart:
    """One PDU to send; ``attempts`` and ``not_before`` belong to the dispatcher."""

    message_id: str
    part_no: int
    pdu: SubmitSm
    attempts: int = 0
    not_before: float = 0.0


def encode_message(profile: CarrierProfile, text: str) -> tuple[EncodedText, int]:
    """The text encoded with the carrier's first fitting data_coding, and its part count."""
    encoded = encode_text(text, profile.submit.encodings, profile.submit.packed)
    return encoded, parts_needed(encoded, profile.submit.segmentation)


def build_submits(
    profile: CarrierProfile,
    encoded: EncodedText,
    dest_addr: str,
    reference: int,
    source_addr: str | None = None,
) -> list[SubmitSm]:
    """The submit_sm PDUs of one message, in part order.

    ``reference`` is the concatenation reference of this message (it must fit the profile's
    segmentation: 8 bits for udh8, 16 otherwise); ``source_addr`` None takes the profile's.
    """
    sub = profile.submit
    source = sub.source_addr if source_addr is None else source_addr
    return [
        SubmitSm(
            source_addr_ton=sub.source_ton,
            source_addr_npi=sub.source_npi,
            source_addr=source,
            dest_addr_ton=sub.dest_ton,
            dest_addr_npi=sub.dest_npi,
            destination_addr=dest_addr,
            esm_class=EsmClass.UDHI if seg.udhi else EsmClass.DEFAULT,
            registered_delivery=sub.registered_delivery,
            data_coding=encoded.data_coding,
            short_message=seg.short_message,
            tlvs=dict(seg.tlvs),
        )
        for seg in segment(encoded, sub.segmentation, reference)
    ]


def outbound_parts(message_id: str, pdus: list[SubmitSm]) -> list[OutboundPart]:
    return [OutboundPart(message_id, n, pdu) for n, pdu in enumerate(pdus, start=1)]
