"""The SMPP 3.4 PDU model: one slotted dataclass per command, fields in wire order.

Each mandatory field carries its wire description in the dataclass field metadata (see
``WireKind``); both codecs (the native one in ``native/`` and the pure-Python twin) derive their
encode/decode plans from it, so this module is the single definition of the wire layout.

Conventions:
- C-Octet strings are ``str`` (Latin-1 mapped one byte to one character, so any octets
  round-trip exactly); ``short_message`` and octet-string TLVs are ``bytes``.
- ``sm_length``, ``number_of_dests`` and ``no_unsuccess`` are not fields: they are derived.
- ``tlvs`` maps tag (int, see ``constants.Tag``) to a typed value for the TLVs of SMPP 3.4
  section 5.3.2 (see ``TLV_SPECS``) and to the raw ``bytes`` value for any other tag. Insertion
  order is wire order.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import IntEnum
from typing import Any, ClassVar, NamedTuple

from gateway.smpp.constants import INTERFACE_VERSION_34, CommandId, Tag
from gateway.smpp.constants import CommandStatus as S


class WireKind(IntEnum):
    CSTR = 1  # C-Octet string, ``size`` octets at most including the NUL
    DATE = 2  # C-Octet string holding nothing or a 16-character SMPP time
    U8 = 3  # one-octet integer
    SHORT_MESSAGE = 4  # sm_length (one octet) followed by that many octets
    DEST_LIST = 5  # submit_multi: number_of_dests then dest_address entries
    UNSUCCESS_LIST = 6  # submit_multi_resp: no_unsuccess then unsuccess_sme entries


class Wire(NamedTuple):
    kind: WireKind
    size: int = 0  # the field's maximum in octets (C-Octet strings include the NUL)
    status: int = S.ESME_RSYSERR  # what a peer is told when this field is malformed


SHORT_MESSAGE_MAX = 254
ADDRESS_21 = 21
ADDRESS_65 = 65
DATE_SIZE = 17


def _cstr(size: int, status: int) -> Any:
    return field(default="", metadata={"wire": Wire(WireKind.CSTR, size, status)})


def _date(status: int) -> Any:
    return field(default="", metadata={"wire": Wire(WireKind.DATE, DATE_SIZE, status)})


def _u8(default: int = 0) -> Any:
    return field(default=default, metadata={"wire": Wire(WireKind.U8, 1)})


def _short_message() -> Any:
    return field(
        default=b"",
        metadata={"wire": Wire(WireKind.SHORT_MESSAGE, SHORT_MESSAGE_MAX, S.ESME_RINVMSGLEN)},
    )


def _list(kind: WireKind, status: int) -> Any:
    return field(default_factory=list, metadata={"wire": Wire(kind, 254, status)})


class SmeDest(NamedTuple):
    """A submit_multi destination with dest_flag 1 (an SME address)."""

    ton: int
    npi: int
    address: str


class DistributionListDest(NamedTuple):
    """A submit_multi destination with dest_flag 2 (a distribution list name)."""

    name: str


class UnsuccessSme(NamedTuple):
    """An entry of submit_multi_resp's unsuccess_sme list."""

    ton: int
    npi: int
    address: str
    error_status_code: int


class NetworkErrorCode(NamedTuple):
    """The network_error_code TLV: network type (1 ANSI-136, 2 IS-95, 3 GSM, ...) and its code."""

    network_type: int
    error_code: int


class TlvKind(IntEnum):
    U8 = 1
    U16 = 2
    U32 = 3
    CSTR = 4  # C-Octet string; a missing final NUL is tolerated on decode (a common quirk)
    OCTETS = 5
    EMPTY = 6  # presence flag, no value: decoded as True
    NETWORK_ERROR = 7  # NetworkErrorCode, 3 octets


class TlvSpec(NamedTuple):
    kind: TlvKind
    max_length: int = 0  # for CSTR (including the NUL) and OCTETS


# SMPP 3.4 section 5.3.2, with the value sizes given there.
TLV_SPECS: dict[int, TlvSpec] = {
    Tag.DEST_ADDR_SUBUNIT: TlvSpec(TlvKind.U8),
    Tag.DEST_NETWORK_TYPE: TlvSpec(TlvKind.U8),
    Tag.DEST_BEARER_TYPE: TlvSpec(TlvKind.U8),
    Tag.DEST_TELEMATICS_ID: TlvSpec(TlvKind.U16),
    Tag.SOURCE_ADDR_SUBUNIT: TlvSpec(TlvKind.U8),
    Tag.SOURCE_NETWORK_TYPE: TlvSpec(TlvKind.U8),
    Tag.SOURCE_BEARER_TYPE: TlvSpec(TlvKind.U8),
    Tag.SOURCE_TELEMATICS_ID: TlvSpec(TlvKind.U8),
    Tag.QOS_TIME_TO_LIVE: TlvSpec(TlvKind.U32),
    Tag.PAYLOAD_TYPE: TlvSpec(TlvKind.U8),
    Tag.ADDITIONAL_STATUS_INFO_TEXT: TlvSpec(TlvKind.CSTR, 256),
    Tag.RECEIPTED_MESSAGE_ID: TlvSpec(TlvKind.CSTR, 65),
    Tag.MS_MSG_WAIT_FACILITIES: TlvSpec(TlvKind.U8),
    Tag.PRIVACY_INDICATOR: TlvSpec(TlvKind.U8),
    Tag.SOURCE_SUBADDRESS: TlvSpec(TlvKind.OCTETS, 23),
    Tag.DEST_SUBADDRESS: TlvSpec(TlvKind.OCTETS, 23),
    Tag.USER_MESSAGE_REFERENCE: TlvSpec(TlvKind.U16),
    Tag.USER_RESPONSE_CODE: TlvSpec(TlvKind.U8),
    Tag.SOURCE_PORT: TlvSpec(TlvKind.U16),
    Tag.DESTINATION_PORT: TlvSpec(TlvKind.U16),
    Tag.SAR_MSG_REF_NUM: TlvSpec(TlvKind.U16),
    Tag.LANGUAGE_INDICATOR: TlvSpec(TlvKind.U8),
    Tag.SAR_TOTAL_SEGMENTS: TlvSpec(TlvKind.U8),
    Tag.SAR_SEGMENT_SEQNUM: TlvSpec(TlvKind.U8),
    Tag.SC_INTERFACE_VERSION: TlvSpec(TlvKind.U8),
    Tag.CALLBACK_NUM_PRES_IND: TlvSpec(TlvKind.U8),
    Tag.CALLBACK_NUM_ATAG: TlvSpec(TlvKind.OCTETS, 65),
    Tag.NUMBER_OF_MESSAGES: TlvSpec(TlvKind.U8),
    Tag.CALLBACK_NUM: TlvSpec(TlvKind.OCTETS, 19),
    Tag.DPF_RESULT: TlvSpec(TlvKind.U8),
    Tag.SET_DPF: TlvSpec(TlvKind.U8),
    Tag.MS_AVAILABILITY_STATUS: TlvSpec(TlvKind.U8),
    Tag.NETWORK_ERROR_CODE: TlvSpec(TlvKind.NETWORK_ERROR),
    Tag.MESSAGE_PAYLOAD: TlvSpec(TlvKind.OCTETS, 65535),
    Tag.DELIVERY_FAILURE_REASON: TlvSpec(TlvKind.U8),
    Tag.MORE_MESSAGES_TO_SEND: TlvSpec(TlvKind.U8),
    Tag.MESSAGE_STATE: TlvSpec(TlvKind.U8),
    Tag.USSD_SERVICE_OP: TlvSpec(TlvKind.U8),
    Tag.DISPLAY_TIME: TlvSpec(TlvKind.U8),
    Tag.SMS_SIGNAL: TlvSpec(TlvKind.U16),
    Tag.MS_VALIDITY: TlvSpec(TlvKind.U8),
    Tag.ALERT_ON_MESSAGE_DELIVERY: TlvSpec(TlvKind.EMPTY),
    Tag.ITS_REPLY_TYPE: TlvSpec(TlvKind.U8),
    Tag.ITS_SESSION_INFO: TlvSpec(TlvKind.U16),
}


@dataclass(slots=True, kw_only=True)
class Pdu:
    """Fields common to every PDU: the header (command_length is derived) and the TLVs."""

    command_id: ClassVar[int]
    command_status: int = 0
    sequence_number: int = 0
    tlvs: dict[int, Any] = field(default_factory=dict)

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & 0x80000000)

    @property
    def command_name(self) -> str:
        return CommandId(self.command_id).name.lower()


@dataclass(slots=True, kw_only=True)
class _Bind(Pdu):
    system_id: str = _cstr(16, S.ESME_RINVSYSID)
    password: str = _cstr(9, S.ESME_RINVPASWD)
    system_type: str = _cstr(13, S.ESME_RINVSYSTYP)
    interface_version: int = _u8(INTERFACE_VERSION_34)
    addr_ton: int = _u8()
    addr_npi: int = _u8()
    address_range: str = _cstr(41, S.ESME_RINVPARLEN)


@dataclass(slots=True, kw_only=True)
class _BindResp(Pdu):
    system_id: str = _cstr(16, S.ESME_RINVSYSID)


@dataclass(slots=True, kw_only=True)
class BindTransmitter(_Bind):
    command_id: ClassVar[int] = CommandId.BIND_TRANSMITTER


@dataclass(slots=True, kw_only=True)
class BindTransmitterResp(_BindResp):
    command_id: ClassVar[int] = CommandId.BIND_TRANSMITTER_RESP


@dataclass(slots=True, kw_only=True)
class BindReceiver(_Bind):
    command_id: ClassVar[int] = CommandId.BIND_RECEIVER


@dataclass(slots=True, kw_only=True)
class BindReceiverResp(_BindResp):
    command_id: ClassVar[int] = CommandId.BIND_RECEIVER_RESP


@dataclass(slots=True, kw_only=True)
class BindTransceiver(_Bind):
    command_id: ClassVar[int] = CommandId.BIND_TRANSCEIVER


@dataclass(slots=True, kw_only=True)
class BindTransceiverResp(_BindResp):
    command_id: ClassVar[int] = CommandId.BIND_TRANSCEIVER_RESP


@dataclass(slots=True, kw_only=True)
class Outbind(Pdu):
    command_id: ClassVar[int] = CommandId.OUTBIND
    system_id: str = _cstr(16, S.ESME_RINVSYSID)
    password: str = _cstr(9, S.ESME_RINVPASWD)


@dataclass(slots=True, kw_only=True)
class Unbind(Pdu):
    command_id: ClassVar[int] = CommandId.UNBIND


@dataclass(slots=True, kw_only=True)
class UnbindResp(Pdu):
    command_id: ClassVar[int] = CommandId.UNBIND_RESP


@dataclass(slots=True, kw_only=True)
class GenericNack(Pdu):
    command_id: ClassVar[int] = CommandId.GENERIC_NACK


@dataclass(slots=True, kw_only=True)
class EnquireLink(Pdu):
    command_id: ClassVar[int] = CommandId.ENQUIRE_LINK


@dataclass(slots=True, kw_only=True)
class EnquireLinkResp(Pdu):
    command_id: ClassVar[int] = CommandId.ENQUIRE_LINK_RESP


@dataclass(slots=True, kw_only=True)
class _ShortMessagePdu(Pdu):
    """submit_sm and deliver_sm share one body (SMPP 3.4 sections 4.4.1 and 4.6.1)."""

    service_type: str = _cstr(6, S.ESME_RINVSERTYP)
    source_addr_ton: int = _u8()
    source_addr_npi: int = _u8()
    source_addr: str = _cstr(ADDRESS_21, S.ESME_RINVSRCADR)
    dest_addr_ton: int = _u8()
    dest_addr_npi: int = _u8()
    destination_addr: str = _cstr(ADDRESS_21, S.ESME_RINVDSTADR)
    esm_class: int = _u8()
    protocol_id: int = _u8()
    priority_flag: int = _u8()
    schedule_delivery_time: str = _date(S.ESME_RINVSCHED)
    validity_period: str = _date(S.ESME_RINVEXPIRY)
    registered_delivery: int = _u8()
    replace_if_present_flag: int = _u8()
    data_coding: int = _u8()
    sm_default_msg_id: int = _u8()
    short_message: bytes = _short_message()


@dataclass(slots=True, kw_only=True)
class SubmitSm(_ShortMessagePdu):
    command_id: ClassVar[int] = CommandId.SUBMIT_SM


@dataclass(slots=True, kw_only=True)
class DeliverSm(_ShortMessagePdu):
    command_id: ClassVar[int] = CommandId.DELIVER_SM


@dataclass(slots=True, kw_only=True)
class _MessageIdResp(Pdu):
    message_id: str = _cstr(65, S.ESME_RINVMSGID)


@dataclass(slots=True, kw_only=True)
class SubmitSmResp(_MessageIdResp):
    command_id: ClassVar[int] = CommandId.SUBMIT_SM_RESP


@dataclass(slots=True, kw_only=True)
class DeliverSmResp(_MessageIdResp):
    command_id: ClassVar[int] = CommandId.DELIVER_SM_RESP


@dataclass(slots=True, kw_only=True)
class DataSmResp(_MessageIdResp):
    command_id: ClassVar[int] = CommandId.DATA_SM_RESP


@dataclass(slots=True, kw_only=True)
class SubmitMulti(Pdu):
    command_id: ClassVar[int] = CommandId.SUBMIT_MULTI
    service_type: str = _cstr(6, S.ESME_RINVSERTYP)
    source_addr_ton: int = _u8()
    source_addr_npi: int = _u8()
    source_addr: str = _cstr(ADDRESS_21, S.ESME_RINVSRCADR)
    dest_addresses: list[SmeDest | DistributionListDest] = _list(
        WireKind.DEST_LIST, S.ESME_RINVNUMDESTS
    )
    esm_class: int = _u8()
    protocol_id: int = _u8()
    priority_flag: int = _u8()
    schedule_delivery_time: str = _date(S.ESME_RINVSCHED)
    validity_period: str = _date(S.ESME_RINVEXPIRY)
    registered_delivery: int = _u8()
    replace_if_present_flag: int = _u8()
    data_coding: int = _u8()
    sm_default_msg_id: int = _u8()
    short_message: bytes = _short_message()


@dataclass(slots=True, kw_only=True)
class SubmitMultiResp(Pdu):
    command_id: ClassVar[int] = CommandId.SUBMIT_MULTI_RESP
    message_id: str = _cstr(65, S.ESME_RINVMSGID)
    unsuccess_smes: list[UnsuccessSme] = _list(WireKind.UNSUCCESS_LIST, S.ESME_RINVNUMDESTS)


@dataclass(slots=True, kw_only=True)
class DataSm(Pdu):
    command_id: ClassVar[int] = CommandId.DATA_SM
    service_type: str = _cstr(6, S.ESME_RINVSERTYP)
    source_addr_ton: int = _u8()
    source_addr_npi: int = _u8()
    source_addr: str = _cstr(ADDRESS_65, S.ESME_RINVSRCADR)
    dest_addr_ton: int = _u8()
    dest_addr_npi: int = _u8()
    destination_addr: str = _cstr(ADDRESS_65, S.ESME_RINVDSTADR)
    esm_class: int = _u8()
    registered_delivery: int = _u8()
    data_coding: int = _u8()


@dataclass(slots=True, kw_only=True)
class QuerySm(Pdu):
    command_id: ClassVar[int] = CommandId.QUERY_SM
    message_id: str = _cstr(65, S.ESME_RINVMSGID)
    source_addr_ton: int = _u8()
    source_addr_npi: int = _u8()
    source_addr: str = _cstr(ADDRESS_21, S.ESME_RINVSRCADR)


@dataclass(slots=True, kw_only=True)
class QuerySmResp(Pdu):
    command_id: ClassVar[int] = CommandId.QUERY_SM_RESP
    message_id: str = _cstr(65, S.ESME_RINVMSGID)
    final_date: str = _date(S.ESME_RINVPARLEN)
    message_state: int = _u8()
    error_code: int = _u8()


@dataclass(slots=True, kw_only=True)
class CancelSm(Pdu):
    command_id: ClassVar[int] = CommandId.CANCEL_SM
    service_type: str = _cstr(6, S.ESME_RINVSERTYP)
    message_id: str = _cstr(65, S.ESME_RINVMSGID)
    source_addr_ton: int = _u8()
    source_addr_npi: int = _u8()
    source_addr: str = _cstr(ADDRESS_21, S.ESME_RINVSRCADR)
    dest_addr_ton: int = _u8()
    dest_addr_npi: int = _u8()
    destination_addr: str = _cstr(ADDRESS_21, S.ESME_RINVDSTADR)


@dataclass(slots=True, kw_only=True)
class CancelSmResp(Pdu):
    command_id: ClassVar[int] = CommandId.CANCEL_SM_RESP


@dataclass(slots=True, kw_only=True)
class ReplaceSm(Pdu):
    command_id: ClassVar[int] = CommandId.REPLACE_SM
    message_id: str = _cstr(65, S.ESME_RINVMSGID)
    source_addr_ton: int = _u8()
    source_addr_npi: int = _u8()
    source_addr: str = _cstr(ADDRESS_21, S.ESME_RINVSRCADR)
    schedule_delivery_time: str = _date(S.ESME_RINVSCHED)
    validity_period: str = _date(S.ESME_RINVEXPIRY)
    registered_delivery: int = _u8()
    sm_default_msg_id: int = _u8()
    short_message: bytes = _short_message()


@dataclass(slots=True, kw_only=True)
class ReplaceSmResp(Pdu):
    command_id: ClassVar[int] = CommandId.REPLACE_SM_RESP


@dataclass(slots=True, kw_only=True)
class AlertNotification(Pdu):
    command_id: ClassVar[int] = CommandId.ALERT_NOTIFICATION
    source_addr_ton: int = _u8()
    source_addr_npi: int = _u8()
    source_addr: str = _cstr(ADDRESS_65, S.ESME_RINVSRCADR)
    esme_addr_ton: int = _u8()
    esme_addr_npi: int = _u8()
    esme_addr: str = _cstr(ADDRESS_65, S.ESME_RINVDSTADR)


PDU_CLASSES: dict[int, type[Pdu]] = {
    cls.command_id: cls
    for cls in (
        GenericNack,
        BindReceiver,
        BindReceiverResp,
        BindTransmitter,
        BindTransmitterResp,
        QuerySm,
        QuerySmResp,
        SubmitSm,
        SubmitSmResp,
        DeliverSm,
        DeliverSmResp,
        Unbind,
        UnbindResp,
        ReplaceSm,
        ReplaceSmResp,
        CancelSm,
        CancelSmResp,
        BindTransceiver,
        BindTransceiverResp,
        Outbind,
        EnquireLink,
        EnquireLinkResp,
        SubmitMulti,
        SubmitMultiResp,
        AlertNotification,
        DataSm,
        DataSmResp,
    )
}

HEADER_FIELDS = ("command_status", "sequence_number", "tlvs")


def body_layout(cls: type[Pdu]) -> tuple[tuple[str, Wire], ...]:
    """The mandatory body fields of ``cls`` in wire order, with their wire descriptions."""
    return tuple((f.name, f.metadata["wire"]) for f in fields(cls) if "wire" in f.metadata)


def response_class(cls: type[Pdu]) -> type[Pdu] | None:
    """The response class that answers ``cls``; None for responses, outbind and
    alert_notification, which SMPP 3.4 does not answer."""
    return PDU_CLASSES.get(cls.command_id | 0x80000000) if not cls.command_id & 0x80000000 else None
