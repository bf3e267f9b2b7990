"""Building the submit_sm parts of one message from its text and the carrier profile."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.ops.carrier_profile import CarrierProfile
from gateway.smpp.constants import EsmClass
from gateway.smpp.pdu import SubmitSm
from gateway.smpp.segmentation import parts_needed, segment
from gateway.smpp.text import EncodedText, encode_text

# Enum members read per message, as module globals (docs/ARCHITECTURE.md, "Per-message objects")
_UDHI = EsmClass.UDHI
_NO_UDHI = EsmClass.DEFAULT


@dataclass(slots=True)
class OutboundPart:
    """One PDU to send; ``attempts`` and ``not_before`` belong to the dispatcher."""

    message_id: str
    part_no: int
    pdu: SubmitSm
    attempts: int = 0
    not_before: float = 0.0
    expires_at: float | None = None  # wall clock (Unix seconds): not sent at or after this
    sent_at: float = 0.0  # the link's clock when it last went on the wire (for its latency)


def relative_validity(seconds: int) -> str:
    """SMPP 3.4 relative time (section 7.1.1, "YYMMDDhhmmss000R") for a validity in seconds.

    Years and months have no fixed length, so only days, hours, minutes and seconds are used:
    86400 -> "000001000000000R". At most 99 days.
    """
    if not 0 < seconds < 100 * 86_400:
        raise ValueError(f"validity must be from 1 s to 99 days, not {seconds} s")
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"0000{days:02d}{hours:02d}{minutes:02d}{secs:02d}000R"


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
    *,
    validity_s: int | None = None,
    priority: int = 0,
) -> list[SubmitSm]:
    """The submit_sm PDUs of one message, in part order.

    ``reference`` is the concatenation reference of this message (it must fit the profile's
    segmentation: 8 bits for udh8, 16 otherwise); ``source_addr`` None takes the profile's.
    ``validity_s`` (relative validity_period; None: the SMSC default) and ``priority``
    (priority_flag 0-3) go on every part.
    """
    sub = profile.submit
    source = sub.source_addr if source_addr is None else source_addr
    validity = "" if validity_s is None else relative_validity(validity_s)
    return [
        SubmitSm(
            source_addr_ton=sub.source_ton,
            source_addr_npi=sub.source_npi,
            source_addr=source,
            dest_addr_ton=sub.dest_ton,
            dest_addr_npi=sub.dest_npi,
            destination_addr=dest_addr,
            esm_class=_UDHI if seg.udhi else _NO_UDHI,
            priority_flag=priority,
            validity_period=validity,
            registered_delivery=sub.registered_delivery,
            data_coding=encoded.data_coding,
            short_message=seg.short_message,
            tlvs=dict(seg.tlvs),
        )
        for seg in segment(encoded, sub.segmentation, reference)
    ]


def outbound_parts(
    message_id: str, pdus: list[SubmitSm], expires_at: float | None = None
) -> list[OutboundPart]:
    return [
        OutboundPart(message_id, n, pdu, expires_at=expires_at)
        for n, pdu in enumerate(pdus, start=1)
    ]
