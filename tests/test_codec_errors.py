"""Malformed PDUs: each one gives a single typed error carrying what the session must answer."""

from __future__ import annotations

import struct
from types import ModuleType
from typing import ClassVar

import pytest

from gateway.smpp.constants import CommandId, Tag
from gateway.smpp.constants import CommandStatus as S
from gateway.smpp.errors import PduDecodeError, PduEncodeError
from gateway.smpp.pdu import (
    BindTransmitter,
    BindTransmitterResp,
    DeliverSm,
    EnquireLink,
    NetworkErrorCode,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    SubmitSmResp,
)


def frame(command_id: int, body: bytes, seq: int = 7, status: int = 0) -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, status, seq) + body


def tlv(tag: int, value: bytes) -> bytes:
    return struct.pack(">HH", tag, len(value)) + value


SUBMIT_BODY = (
    b"\0"  # service_type
    + b"\x01\x01447700900001\0"
    + b"\x01\x01447700900002\0"
    + b"\0\0\0"  # esm_class, protocol_id, priority_flag
    + b"\0\0"  # schedule_delivery_time, validity_period
    + b"\x01\0\0\0"  # registered_delivery, replace_if_present, data_coding, sm_default_msg_id
    + b"\x05hello"
)


def decode_error(codec: ModuleType, data: bytes) -> PduDecodeError:
    with pytest.raises(PduDecodeError) as info:
        codec.decode_pdu(data)
    return info.value


def test_valid_submit_sm_decodes(codec: ModuleType) -> None:
    pdu = codec.decode_pdu(frame(CommandId.SUBMIT_SM, SUBMIT_BODY))
    assert pdu == SubmitSm(
        sequence_number=7,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="447700900001",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="447700900002",
        registered_delivery=1,
        short_message=b"hello",
    )
    assert codec.encode_pdu(pdu) == frame(CommandId.SUBMIT_SM, SUBMIT_BODY)


def test_header_shorter_than_16(codec: ModuleType) -> None:
    err = decode_error(codec, b"\0\0\0\x0c\0\0\0\x15\0\0\0\0")
    assert err.command_status == S.ESME_RINVCMDLEN


def test_command_length_mismatch(codec: ModuleType) -> None:
    data = bytearray(frame(CommandId.ENQUIRE_LINK, b""))
    data[3] = 20
    err = decode_error(codec, bytes(data))
    assert (err.command_status, err.command_id, err.sequence_number) == (
        S.ESME_RINVCMDLEN,
        CommandId.ENQUIRE_LINK,
        7,
    )


def test_unknown_command_id(codec: ModuleType) -> None:
    err = decode_error(codec, frame(0x00000077, b"", seq=42))
    assert (err.command_status, err.command_id, err.sequence_number) == (
        S.ESME_RINVCMDID,
        0x77,
        42,
    )


@pytest.mark.parametrize("cut", [1, 5, 20, len(SUBMIT_BODY) - 1])
def test_truncated_body(codec: ModuleType, cut: int) -> None:
    err = decode_error(codec, frame(CommandId.SUBMIT_SM, SUBMIT_BODY[:cut]))
    assert err.command_status == S.ESME_RINVCMDLEN
    assert err.command_id == CommandId.SUBMIT_SM


def test_c_octet_string_longer_than_its_field(codec: ModuleType) -> None:
    body = b"\0" + b"\x01\x01" + b"1" * 30 + b"\0" + SUBMIT_BODY[16:]
    err = decode_error(codec, frame(CommandId.SUBMIT_SM, body))
    assert err.command_status == S.ESME_RINVSRCADR


def test_c_octet_string_without_terminator(codec: ModuleType) -> None:
    err = decode_error(codec, frame(CommandId.BIND_TRANSMITTER, b"A" * 40))
    assert err.command_status == S.ESME_RINVSYSID


def test_bad_date_length(codec: ModuleType) -> None:
    body = SUBMIT_BODY[:33] + b"2611281200\0" + SUBMIT_BODY[34:]
    err = decode_error(codec, frame(CommandId.SUBMIT_SM, body))
    assert err.command_status == S.ESME_RINVSCHED


def test_sm_length_past_body(codec: ModuleType) -> None:
    body = SUBMIT_BODY[:-6] + b"\x09hello"
    assert decode_error(codec, frame(CommandId.SUBMIT_SM, body)).command_status == (
        S.ESME_RINVCMDLEN
    )


def test_tlv_running_past_the_pdu(codec: ModuleType) -> None:
    body = SUBMIT_BODY + struct.pack(">HH", 0x1400, 50) + b"abc"
    assert decode_error(codec, frame(CommandId.SUBMIT_SM, body)).command_status == (
        S.ESME_RINVOPTPARSTREAM
    )


def test_stray_octets_after_tlvs(codec: ModuleType) -> None:
    body = SUBMIT_BODY + b"\x02\x0c"
    assert decode_error(codec, frame(CommandId.SUBMIT_SM, body)).command_status == (
        S.ESME_RINVOPTPARSTREAM
    )


def test_known_tlv_with_wrong_size(codec: ModuleType) -> None:
    body = SUBMIT_BODY + tlv(Tag.SAR_MSG_REF_NUM, b"\x01\x02\x03")
    assert decode_error(codec, frame(CommandId.SUBMIT_SM, body)).command_status == (
        S.ESME_RINVPARLEN
    )


def test_repeated_tlv(codec: ModuleType) -> None:
    body = SUBMIT_BODY + tlv(0x1400, b"a") + tlv(0x1400, b"b")
    assert decode_error(codec, frame(CommandId.SUBMIT_SM, body)).command_status == (
        S.ESME_RINVOPTPARSTREAM
    )


def test_bad_dest_flag(codec: ModuleType) -> None:
    body = b"\0\x01\x01123\0" + b"\x01\x03" + b"\0" * 9 + b"\0"
    assert decode_error(codec, frame(CommandId.SUBMIT_MULTI, body)).command_status == (
        S.ESME_RINVDESTFLAG
    )


def test_error_response_without_body(codec: ModuleType) -> None:
    pdu = codec.decode_pdu(frame(CommandId.SUBMIT_SM_RESP, b"", status=S.ESME_RTHROTTLED))
    assert pdu == SubmitSmResp(command_status=S.ESME_RTHROTTLED, sequence_number=7)
    assert codec.decode_pdu(frame(CommandId.SUBMIT_MULTI_RESP, b"")) == SubmitMultiResp(
        sequence_number=7
    )


def test_request_without_body_is_truncated(codec: ModuleType) -> None:
    assert decode_error(codec, frame(CommandId.SUBMIT_SM, b"")).command_status == (
        S.ESME_RINVCMDLEN
    )


def test_receipt_tlvs_are_typed_and_vendor_tlvs_kept_exact(codec: ModuleType) -> None:
    vendor = tlv(0x1501, b"\x00\xffvendor\x00")
    body = (
        SUBMIT_BODY
        + tlv(Tag.RECEIPTED_MESSAGE_ID, b"1a2b3c\0")
        + tlv(Tag.MESSAGE_STATE, b"\x02")
        + tlv(Tag.NETWORK_ERROR_CODE, b"\x03\x00\x22")
        + tlv(Tag.ALERT_ON_MESSAGE_DELIVERY, b"")
        + vendor
    )
    data = frame(CommandId.DELIVER_SM, body)
    pdu = codec.decode_pdu(data)
    assert isinstance(pdu, DeliverSm)
    assert pdu.tlvs == {
        Tag.RECEIPTED_MESSAGE_ID: "1a2b3c",
        Tag.MESSAGE_STATE: 2,
        Tag.NETWORK_ERROR_CODE: NetworkErrorCode(3, 0x22),
        Tag.ALERT_ON_MESSAGE_DELIVERY: True,
        0x1501: b"\x00\xffvendor\x00",
    }
    assert codec.encode_pdu(pdu) == data


def test_receipted_message_id_without_nul_is_tolerated(codec: ModuleType) -> None:
    body = SUBMIT_BODY + tlv(Tag.RECEIPTED_MESSAGE_ID, b"ABC123")
    pdu = codec.decode_pdu(frame(CommandId.DELIVER_SM, body))
    assert pdu.tlvs[Tag.RECEIPTED_MESSAGE_ID] == "ABC123"


def test_nul_inside_c_string_tlv(codec: ModuleType) -> None:
    body = SUBMIT_BODY + tlv(Tag.RECEIPTED_MESSAGE_ID, b"AB\0C\0")
    assert decode_error(codec, frame(CommandId.DELIVER_SM, body)).command_status == (
        S.ESME_RINVOPTPARAMVAL
    )


def test_latin1_octets_round_trip(codec: ModuleType) -> None:
    pdu = BindTransmitter(system_id="caf\xe9\xff", password="p\x01", sequence_number=1)
    data = codec.encode_pdu(pdu)
    assert b"caf\xe9\xff\0p\x01\0" in data
    assert codec.decode_pdu(data) == pdu


@pytest.mark.parametrize(
    ("pdu", "field"),
    [
        (BindTransmitter(system_id="x" * 16), "system_id"),
        (BindTransmitter(system_id="\u20ac"), "system_id"),
        (BindTransmitter(system_id="a\0b"), "system_id"),
        (BindTransmitter(addr_ton=256), "addr_ton"),
        (SubmitSm(short_message=b"x" * 255), "short_message"),
        (SubmitSm(short_message="text"), "short_message"),
        (SubmitSm(validity_period="1d"), "validity_period"),
        (SubmitSm(tlvs={Tag.MESSAGE_STATE: 300}), "tlvs[0x0427]"),
        (SubmitSm(tlvs={0x1400: "not bytes"}), "tlvs[0x1400]"),
        (SubmitSm(tlvs={Tag.NETWORK_ERROR_CODE: (3, 1)}), "tlvs[0x0423]"),
        (SubmitMulti(dest_addresses=[("1", "2")]), "dest_addresses"),
        (EnquireLink(sequence_number=2**32), "sequence_number"),
        (BindTransmitterResp(command_status=-1), "command_status"),
    ],
)
def test_unencodable_fields(codec: ModuleType, pdu: object, field: str) -> None:
    with pytest.raises(PduEncodeError) as info:
        codec.encode_pdu(pdu)
    assert info.value.field == field


def test_c_string_tlv_without_nul_at_full_size_is_refused(codec: ModuleType) -> None:
    # 65 octets with no NUL would need 66 with it: it could never be sent again as received.
    body = SUBMIT_BODY + tlv(Tag.RECEIPTED_MESSAGE_ID, b"9" * 65)
    assert decode_error(codec, frame(CommandId.DELIVER_SM, body)).command_status == (
        S.ESME_RINVPARLEN
    )


def test_huge_int_gives_a_typed_error(codec: ModuleType) -> None:
    with pytest.raises(PduEncodeError) as info:
        codec.encode_pdu(SubmitSm(esm_class=10**5000))
    assert "an int of" in info.value.reason


def test_non_pdu_objects_are_refused(codec: ModuleType) -> None:
    class Odd:
        command_id: ClassVar[list[int]] = []  # unhashable

    with pytest.raises(PduEncodeError):
        codec.encode_pdu(Odd())


def test_decode_takes_buffers_only(codec: ModuleType) -> None:
    data = frame(CommandId.ENQUIRE_LINK, b"")
    assert codec.decode_pdu(memoryview(data)) == codec.decode_pdu(bytearray(data))
    with pytest.raises(TypeError):
        codec.decode_pdu(16)
