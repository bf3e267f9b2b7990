"""Pure-Python SMPP 3.4 PDU codec: the twin of ``native/smpp_codec.pyx``.

Both modules expose ``encode_pdu(pdu) -> bytes`` and ``decode_pdu(frame) -> Pdu`` with identical
results, including the exact errors they raise. The wire layout comes from ``gateway.smpp.pdu``.

Decode rules (shared with the native codec):
- ``frame`` is one whole PDU; command_length must equal its size (else ESME_RINVCMDLEN).
- A response whose body is empty (SMPP 3.4 lets an SMSC omit the body of an error response)
  decodes with default field values.
- A body that ends inside a mandatory field is ESME_RINVCMDLEN; a C-Octet string with no NUL
  within its maximum size, or a bad date length, is the field's own status (ESME_RINVSRCADR...).
- TLVs: fewer than 4 octets left, a length running past the PDU, or a repeated tag is
  ESME_RINVOPTPARSTREAM; a known TLV of the wrong size is ESME_RINVPARLEN; a NUL inside a
  C-Octet string TLV (other than the final one, which may be missing) is ESME_RINVOPTPARAMVAL.
"""

from __future__ import annotations

from struct import Struct
from typing import Any

from gateway.smpp.constants import HEADER_LENGTH, RESPONSE_BIT
from gateway.smpp.constants import CommandStatus as S
from gateway.smpp.errors import PduDecodeError, PduEncodeError, describe
from gateway.smpp.pdu import (
    PDU_CLASSES,
    TLV_SPECS,
    DistributionListDest,
    NetworkErrorCode,
    Pdu,
    SmeDest,
    TlvKind,
    UnsuccessSme,
    WireKind,
    body_layout,
)

_HEADER = Struct(">IIII")
_TLV_HEADER = Struct(">HH")
_U16 = Struct(">H")
_U32 = Struct(">I")

_CSTR = WireKind.CSTR
_DATE = WireKind.DATE
_U8 = WireKind.U8
_SM = WireKind.SHORT_MESSAGE
_DESTS = WireKind.DEST_LIST
_UNSUCCESS = WireKind.UNSUCCESS_LIST

# command_id -> (class, ((field name, kind, size, status), ...))
_PLANS: dict[int, tuple[type[Pdu], tuple[tuple[str, int, int, int], ...]]] = {
    cid: (cls, tuple((name, w.kind, w.size, w.status) for name, w in body_layout(cls)))
    for cid, cls in PDU_CLASSES.items()
}
_PLANS_BY_CLASS = {plan[0]: plan for plan in _PLANS.values()}
_TLV_PLANS: dict[int, tuple[int, int]] = {
    tag: (s.kind, s.max_length) for tag, s in TLV_SPECS.items()
}


class _Reader:
    __slots__ = ("cid", "end", "frame", "pos", "seq")

    def __init__(self, frame: bytes, cid: int, seq: int) -> None:
        self.frame = frame
        self.pos = HEADER_LENGTH
        self.end = len(frame)
        self.cid = cid
        self.seq = seq

    def error(self, status: int, reason: str) -> PduDecodeError:
        return PduDecodeError(status, reason, self.cid, self.seq)

    def u8(self, name: str) -> int:
        pos = self.pos
        if pos >= self.end:
            raise self.error(S.ESME_RINVCMDLEN, f"body ends before {name}")
        self.pos = pos + 1
        return self.frame[pos]

    def cstr(self, name: str, size: int, status: int) -> str:
        pos = self.pos
        limit = pos + size
        end = self.end
        nul = self.frame.find(b"\0", pos, limit if limit < end else end)
        if nul < 0:
            if end < limit:
                raise self.error(S.ESME_RINVCMDLEN, f"body ends inside {name}")
            raise self.error(status, f"{name} has no NUL within {size} octets")
        self.pos = nul + 1
        return self.frame[pos:nul].decode("latin-1")

    def date(self, name: str, size: int, status: int) -> str:
        value = self.cstr(name, size, status)
        if len(value) != 0 and len(value) != size - 1:
            raise self.error(status, f"{name} must be empty or {size - 1} characters")
        return value

    def short_message(self, name: str, size: int, status: int) -> bytes:
        length = self.u8("sm_length")
        pos = self.pos
        if length > size:
            raise self.error(status, f"sm_length {length} is above {size}")
        if pos + length > self.end:
            raise self.error(S.ESME_RINVCMDLEN, f"body ends inside {name}")
        self.pos = pos + length
        return self.frame[pos : pos + length]

    def dest_list(self, name: str, size: int, status: int) -> list[SmeDest | DistributionListDest]:
        count = self.u8("number_of_dests")
        if count > size:
            raise self.error(status, f"number_of_dests {count} is above {size}")
        dests: list[SmeDest | DistributionListDest] = []
        for _ in range(count):
            flag = self.u8("dest_flag")
            if flag == 1:
                ton = self.u8("dest_addr_ton")
                npi = self.u8("dest_addr_npi")
                dests.append(
                    SmeDest(ton, npi, self.cstr("destination_addr", 21, S.ESME_RINVDSTADR))
                )
            elif flag == 2:
                dests.append(DistributionListDest(self.cstr("dl_name", 21, S.ESME_RINVDLNAME)))
            else:
                raise self.error(S.ESME_RINVDESTFLAG, f"dest_flag {flag} is not 1 or 2")
        return dests

    def unsuccess_list(self, name: str, size: int, status: int) -> list[UnsuccessSme]:
        count = self.u8("no_unsuccess")
        if count > size:
            raise self.error(status, f"no_unsuccess {count} is above {size}")
        smes = []
        for _ in range(count):
            ton = self.u8("dest_addr_ton")
            npi = self.u8("dest_addr_npi")
            address = self.cstr("destination_addr", 21, S.ESME_RINVDSTADR)
            pos = self.pos
            if pos + 4 > self.end:
                raise self.error(S.ESME_RINVCMDLEN, "body ends inside error_status_code")
            self.pos = pos + 4
            smes.append(UnsuccessSme(ton, npi, address, _U32.unpack_from(self.frame, pos)[0]))
        return smes

    def tlvs(self) -> dict[int, Any]:
        frame = self.frame
        pos = self.pos
        end = self.end
        tlvs: dict[int, Any] = {}
        while pos < end:
            if end - pos < 4:
                raise self.error(
                    S.ESME_RINVOPTPARSTREAM, f"{end - pos} stray octets after the TLVs"
                )
            tag, length = _TLV_HEADER.unpack_from(frame, pos)
            pos += 4
            if pos + length > end:
                raise self.error(
                    S.ESME_RINVOPTPARSTREAM, f"TLV 0x{tag:04x} length {length} runs past the PDU"
                )
            if tag in tlvs:
                raise self.error(S.ESME_RINVOPTPARSTREAM, f"TLV 0x{tag:04x} appears twice")
            raw = frame[pos : pos + length]
            plan = _TLV_PLANS.get(tag)
            tlvs[tag] = raw if plan is None else self._tlv_value(tag, plan[0], plan[1], raw)
            pos += length
        self.pos = pos
        return tlvs

    def _tlv_value(self, tag: int, kind: int, max_length: int, raw: bytes) -> Any:
        length = len(raw)
        if kind == TlvKind.U8:
            if length == 1:
                return raw[0]
        elif kind == TlvKind.U16:
            if length == 2:
                return _U16.unpack(raw)[0]
        elif kind == TlvKind.U32:
            if length == 4:
                return _U32.unpack(raw)[0]
        elif kind == TlvKind.CSTR:
            if length <= max_length:
                nul = raw.find(b"\0")
                if nul < 0:
                    if length < max_length:  # the final NUL is missing, as some SMSCs send it
                        return raw.decode("latin-1")
                elif nul == length - 1:
                    return raw[:nul].decode("latin-1")
                else:
                    raise self.error(S.ESME_RINVOPTPARAMVAL, f"TLV 0x{tag:04x} has a NUL inside")
        elif kind == TlvKind.OCTETS:
            if length <= max_length:
                return raw
        elif kind == TlvKind.EMPTY:
            if length == 0:
                return True
        elif length == 3:  # TlvKind.NETWORK_ERROR
            return NetworkErrorCode(raw[0], _U16.unpack_from(raw, 1)[0])
        raise self.error(S.ESME_RINVPARLEN, f"TLV 0x{tag:04x} has a bad length {length}")


def decode_pdu(frame: bytes) -> Pdu:
    """Decode one whole PDU (header included). Raises PduDecodeError."""
    if type(frame) is not bytes:
        frame = bytes(memoryview(frame))  # any buffer; TypeError for anything else
    size = len(frame)
    if size < HEADER_LENGTH:
        raise PduDecodeError(S.ESME_RINVCMDLEN, f"{size} octets is shorter than the header")
    length, cid, status, seq = _HEADER.unpack_from(frame)
    if length != size:
        raise PduDecodeError(
            S.ESME_RINVCMDLEN, f"command_length {length} but {size} octets given", cid, seq
        )
    plan = _PLANS.get(cid)
    if plan is None:
        raise PduDecodeError(S.ESME_RINVCMDID, "unknown command_id", cid, seq)
    cls, layout = plan
    pdu = object.__new__(cls)
    pdu.command_status = status
    pdu.sequence_number = seq
    if size == HEADER_LENGTH and cid & RESPONSE_BIT:
        for name, kind, _, _ in layout:
            setattr(pdu, name, [] if kind in (_DESTS, _UNSUCCESS) else _DEFAULTS[kind])
        pdu.tlvs = {}
        return pdu
    reader = _Reader(frame, cid, seq)
    for name, kind, fsize, fstatus in layout:
        if kind == _U8:
            value: Any = reader.u8(name)
        elif kind == _CSTR:
            value = reader.cstr(name, fsize, fstatus)
        elif kind == _DATE:
            value = reader.date(name, fsize, fstatus)
        elif kind == _SM:
            value = reader.short_message(name, fsize, fstatus)
        elif kind == _DESTS:
            value = reader.dest_list(name, fsize, fstatus)
        else:
            value = reader.unsuccess_list(name, fsize, fstatus)
        setattr(pdu, name, value)
    pdu.tlvs = reader.tlvs()
    return pdu


_DEFAULTS: dict[int, Any] = {_U8: 0, _CSTR: "", _DATE: "", _SM: b""}


class _Writer:
    __slots__ = ("out",)

    def __init__(self) -> None:
        self.out = bytearray(HEADER_LENGTH)

    def u8(self, name: str, value: Any) -> None:
        self.out.append(_uint(name, value, 0xFF))

    def cstr(self, name: str, value: Any, size: int) -> None:
        self.out += _cstr_bytes(name, value, size)

    def date(self, name: str, value: Any, size: int) -> None:
        self.cstr(name, value, size)
        if len(value) != 0 and len(value) != size - 1:
            raise PduEncodeError(name, f"must be empty or {size - 1} characters")

    def octets(self, name: str, value: Any, size: int) -> None:
        if not isinstance(value, (bytes, bytearray)):
            raise PduEncodeError(name, f"must be bytes, not {type(value).__name__}")
        if len(value) > size:
            raise PduEncodeError(name, f"is longer than {size} octets")
        self.out.append(len(value))
        self.out += value

    def count(self, name: str, value: Any, size: int) -> None:
        if not isinstance(value, list):
            raise PduEncodeError(name, f"must be a list, not {type(value).__name__}")
        if len(value) > size:
            raise PduEncodeError(name, f"has more than {size} entries")
        self.out.append(len(value))

    def dest_list(self, name: str, value: Any, size: int) -> None:
        self.count(name, value, size)
        for dest in value:
            if type(dest) is SmeDest:
                self.out.append(1)
                self.u8("dest_addr_ton", dest.ton)
                self.u8("dest_addr_npi", dest.npi)
                self.cstr("destination_addr", dest.address, 21)
            elif type(dest) is DistributionListDest:
                self.out.append(2)
                self.cstr("dl_name", dest.name, 21)
            else:
                raise PduEncodeError(name, "entries must be SmeDest or DistributionListDest")

    def unsuccess_list(self, name: str, value: Any, size: int) -> None:
        self.count(name, value, size)
        for sme in value:
            if type(sme) is not UnsuccessSme:
                raise PduEncodeError(name, "entries must be UnsuccessSme")
            self.u8("dest_addr_ton", sme.ton)
            self.u8("dest_addr_npi", sme.npi)
            self.cstr("destination_addr", sme.address, 21)
            self.out += _u32("error_status_code", sme.error_status_code)

    def tlvs(self, tlvs: Any) -> None:
        if not isinstance(tlvs, dict):
            raise PduEncodeError("tlvs", f"must be a dict, not {type(tlvs).__name__}")
        for tag, value in tlvs.items():
            if not isinstance(tag, int) or not 0 <= tag <= 0xFFFF:
                raise PduEncodeError("tlvs", f"tag {describe(tag)} is not an int from 0 to 65535")
            raw = _tlv_bytes(tag, value)
            if len(raw) > 0xFFFF:
                raise PduEncodeError(f"tlvs[0x{tag:04x}]", "value is longer than 65535 octets")
            self.out += _TLV_HEADER.pack(tag, len(raw))
            self.out += raw


def _uint(name: str, value: Any, maximum: int) -> int:
    if not isinstance(value, int) or not 0 <= value <= maximum:
        raise PduEncodeError(name, f"must be an int from 0 to {maximum}, not {describe(value)}")
    return value


def _u32(name: str, value: Any) -> bytes:
    return _U32.pack(_uint(name, value, 0xFFFFFFFF))


def _cstr_bytes(name: str, value: Any, size: int) -> bytes:
    """A C-Octet string of at most ``size`` octets, its NUL included."""
    if not isinstance(value, str):
        raise PduEncodeError(name, f"must be a str, not {type(value).__name__}")
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        raise PduEncodeError(name, "has characters outside Latin-1") from None
    if len(raw) >= size:
        raise PduEncodeError(name, f"is longer than {size - 1} characters")
    if b"\0" in raw:
        raise PduEncodeError(name, "contains NUL")
    return raw + b"\0"


def _tlv_bytes(tag: int, value: Any) -> bytes:
    name = f"tlvs[0x{tag:04x}]"
    plan = _TLV_PLANS.get(tag)
    if plan is None or plan[0] == TlvKind.OCTETS:
        if not isinstance(value, (bytes, bytearray)):
            raise PduEncodeError(name, f"must be bytes, not {type(value).__name__}")
        if plan is not None and len(value) > plan[1]:
            raise PduEncodeError(name, f"is longer than {plan[1]} octets")
        return bytes(value)
    kind, max_length = plan
    if kind == TlvKind.U8:
        return bytes((_uint(name, value, 0xFF),))
    if kind == TlvKind.U16:
        return _U16.pack(_uint(name, value, 0xFFFF))
    if kind == TlvKind.U32:
        return _u32(name, value)
    if kind == TlvKind.CSTR:
        return _cstr_bytes(name, value, max_length)
    if kind == TlvKind.EMPTY:
        if value is not True:
            raise PduEncodeError(name, "a presence flag takes the value True")
        return b""
    if type(value) is not NetworkErrorCode:
        raise PduEncodeError(name, "must be a NetworkErrorCode")
    if not isinstance(value.network_type, int) or not 0 <= value.network_type <= 0xFF:
        raise PduEncodeError(name, "network_type must be an int from 0 to 255")
    if not isinstance(value.error_code, int) or not 0 <= value.error_code <= 0xFFFF:
        raise PduEncodeError(name, "error_code must be an int from 0 to 65535")
    return bytes((value.network_type,)) + _U16.pack(value.error_code)


def encode_pdu(pdu: Pdu) -> bytes:
    """Encode a PDU to its wire form. Raises PduEncodeError for fields that cannot be sent."""
    plan = _PLANS_BY_CLASS.get(type(pdu))
    if plan is None:
        raise PduEncodeError("command_id", f"{type(pdu).__name__} is not an SMPP 3.4 PDU class")
    writer = _Writer()
    for name, kind, size, _ in plan[1]:
        value = getattr(pdu, name)
        if kind == _U8:
            writer.u8(name, value)
        elif kind == _CSTR:
            writer.cstr(name, value, size)
        elif kind == _DATE:
            writer.date(name, value, size)
        elif kind == _SM:
            writer.octets(name, value, size)
        elif kind == _DESTS:
            writer.dest_list(name, value, size)
        else:
            writer.unsuccess_list(name, value, size)
    writer.tlvs(pdu.tlvs)
    out = writer.out
    status = _u32("command_status", pdu.command_status)
    seq = _u32("sequence_number", pdu.sequence_number)
    out[0:16] = _U32.pack(len(out)) + _U32.pack(pdu.command_id) + status + seq
    return bytes(out)
