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

Speed: every Python operation counts here, so the per-class plans are built once at import
(kinds as plain ints), the common kinds are handled inline in one loop per direction, and the
rare kinds and every error are left to helper functions. Decode reads each run of one-octet
fields with one struct call, collects the values in a list and sets the new object's slots in
one ``map`` pass. Encode reads the fields with one ``attrgetter``, checks the usual exact types
inline (anything else goes to the careful helpers, which accept or refuse it exactly as the
native codec does) and appends to one bytearray.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import repeat
from operator import attrgetter, index
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

_unpack_header = Struct(">IIII").unpack_from
_pack_header = Struct(">IIII").pack
_unpack_tlv_header = Struct(">HH").unpack_from
_pack_tlv_header = Struct(">HH").pack
_unpack_u16 = Struct(">H").unpack_from
_pack_u16 = Struct(">H").pack
_unpack_u32 = Struct(">I").unpack_from
_pack_u32 = Struct(">I").pack
_new_object = object.__new__

# The kinds as plain ints: comparing an IntEnum costs more than comparing an int.
_CSTR = int(WireKind.CSTR)
_DATE = int(WireKind.DATE)
_U8 = int(WireKind.U8)
_SM = int(WireKind.SHORT_MESSAGE)
_DESTS = int(WireKind.DEST_LIST)
_UNSUCCESS = int(WireKind.UNSUCCESS_LIST)
_NO_FIELD = 0  # a decode step with only one-octet fields (a body that starts with them)

_T_U8 = int(TlvKind.U8)
_T_U16 = int(TlvKind.U16)
_T_U32 = int(TlvKind.U32)
_T_CSTR = int(TlvKind.CSTR)
_T_OCTETS = int(TlvKind.OCTETS)
_T_EMPTY = int(TlvKind.EMPTY)

# tag -> (kind, max_length)
_TLV_PLANS: dict[int, tuple[int, int]] = {
    tag: (int(s.kind), s.max_length) for tag, s in TLV_SPECS.items()
}

_DecodeStep = tuple[int, int, int, tuple[str, ...], int, Callable[[bytes, int], tuple[int, ...]]]
_EncodeStep = tuple[int, str, int, int]


def _decode_plan(cls: type[Pdu]) -> tuple[type[Pdu], tuple[_DecodeStep, ...], tuple[str, ...]]:
    """(class, steps, the slot names in the order decode_pdu collects their values).

    A step is a field that is not a one-octet integer and the one-octet fields after it, read
    together: (kind, size, status, names, run, read_run), ``names`` being the field's name and
    theirs, ``run`` how many they are and ``read_run(frame, pos)`` a reader of them. A body that
    starts with one-octet fields starts with a step of kind _NO_FIELD."""
    groups: list[list[Any]] = []
    for name, wire in body_layout(cls):
        if wire.kind != _U8:
            groups.append([int(wire.kind), wire.size, wire.status, (name,)])
        elif groups:
            groups[-1][3] += (name,)
        else:
            groups.append([_NO_FIELD, 0, 0, ("", name)])
    steps = tuple(
        (kind, size, status, names, len(names) - 1, Struct(f"{len(names) - 1}B").unpack_from)
        for kind, size, status, names in groups
    )
    fields = (name for name, _ in body_layout(cls))
    return cls, steps, ("command_status", "sequence_number", *fields, "tlvs")


def _field_reader(names: tuple[str, ...]) -> Callable[[Pdu], tuple[Any, ...]]:
    """The named attributes of a PDU as a tuple (attrgetter returns one name's value bare)."""
    if len(names) > 1:
        return attrgetter(*names)
    if len(names) == 1:
        read_one = attrgetter(names[0])
        return lambda pdu: (read_one(pdu),)
    return lambda pdu: ()


def _encode_plan(
    cls: type[Pdu],
) -> tuple[int, tuple[_EncodeStep, ...], Callable[[Pdu], tuple[Any, ...]]]:
    """(command_id, (kind, name, size, i) per field, a reader of the fields' values: the
    field's is at ``i`` in the tuple it returns)."""
    layout = body_layout(cls)
    steps = tuple((int(wire.kind), name, wire.size, i) for i, (name, wire) in enumerate(layout))
    return int(cls.command_id), steps, _field_reader(tuple(name for name, _ in layout))


_DECODE_PLANS = {cid: _decode_plan(cls) for cid, cls in PDU_CLASSES.items()}
_ENCODE_PLANS = {cls: _encode_plan(cls) for cls in PDU_CLASSES.values()}


# ---------------------------------------------------------------------------------------------
# Decode


def decode_pdu(frame: bytes) -> Pdu:
    """Decode one whole PDU (header included). Raises PduDecodeError."""
    if type(frame) is not bytes:
        frame = bytes(memoryview(frame))  # any buffer; TypeError for anything else
    end = len(frame)
    if end < HEADER_LENGTH:
        raise PduDecodeError(S.ESME_RINVCMDLEN, f"{end} octets is shorter than the header")
    length, cid, status, seq = _unpack_header(frame)
    if length != end:
        raise PduDecodeError(
            S.ESME_RINVCMDLEN, f"command_length {length} but {end} octets given", cid, seq
        )
    plan = _DECODE_PLANS.get(cid)
    if plan is None:
        raise PduDecodeError(S.ESME_RINVCMDID, "unknown command_id", cid, seq)
    cls, steps, names = plan
    values = [status, seq]  # then the fields in wire order, then the TLVs: as in ``names``
    if end == HEADER_LENGTH and cid & RESPONSE_BIT:
        return _new_pdu(cls, names, values + _default_values(steps))
    pos = HEADER_LENGTH
    for kind, size, field_status, field_names, run, read_run in steps:
        if kind == _CSTR or kind == _DATE:  # noqa: SIM109 (quicker than a tuple lookup)
            if pos < end and not frame[pos]:  # empty, as optional strings mostly are
                values.append("")
                pos += 1
            else:
                nul = frame.find(b"\0", pos)
                if nul < 0 or nul - pos >= size:
                    raise _no_nul(cid, seq, field_names[0], size, field_status, end < pos + size)
                if kind == _DATE and nul - pos != size - 1:
                    raise _bad_date(cid, seq, field_names[0], size, field_status)
                values.append(frame[pos:nul].decode("latin-1"))
                pos = nul + 1
        elif kind == _SM:
            if pos >= end:
                raise _error(cid, seq, S.ESME_RINVCMDLEN, "body ends before sm_length")
            length = frame[pos]
            if length > size:
                raise _error(cid, seq, field_status, f"sm_length {length} is above {size}")
            pos += 1
            stop = pos + length
            if stop > end:
                raise _error(cid, seq, S.ESME_RINVCMDLEN, f"body ends inside {field_names[0]}")
            values.append(frame[pos:stop])
            pos = stop
        elif kind != _NO_FIELD:
            read_list = _read_dest_list if kind == _DESTS else _read_unsuccess_list
            value, pos = read_list(_Reader(frame, pos, cid, seq), size, field_status)
            values.append(value)
        if run:
            if pos + run > end:  # name the first field left without its octet
                raise _error(
                    cid, seq, S.ESME_RINVCMDLEN, f"body ends before {field_names[1 + end - pos]}"
                )
            values += read_run(frame, pos)
            pos += run
    values.append(_read_tlvs(frame, pos, cid, seq) if pos < end else {})
    pdu = _new_object(cls)  # __init__ would only set the slots, as map() does here
    any(map(setattr, repeat(pdu), names, values))  # setattr returns None: any() runs them all
    return pdu


def _new_pdu(cls: type[Pdu], names: tuple[str, ...], values: list[Any]) -> Pdu:
    pdu = _new_object(cls)
    for name, value in zip(names, values, strict=True):
        setattr(pdu, name, value)
    return pdu


def _default_values(steps: tuple[_DecodeStep, ...]) -> list[Any]:
    """The values of a response whose body was left out: default fields and no TLVs."""
    values: list[Any] = []
    for kind, _, _, _, run, _ in steps:
        if kind in (_CSTR, _DATE):
            values.append("")
        elif kind == _SM:
            values.append(b"")
        elif kind != _NO_FIELD:
            values.append([])
        values += [0] * run
    values.append({})
    return values


def _error(cid: int, seq: int, status: int, reason: str) -> PduDecodeError:
    return PduDecodeError(status, reason, cid, seq)


def _no_nul(
    cid: int, seq: int, name: str, size: int, status: int, truncated: bool
) -> PduDecodeError:
    if truncated:
        return _error(cid, seq, S.ESME_RINVCMDLEN, f"body ends inside {name}")
    return _error(cid, seq, status, f"{name} has no NUL within {size} octets")


def _bad_date(cid: int, seq: int, name: str, size: int, status: int) -> PduDecodeError:
    return _error(cid, seq, status, f"{name} must be empty or {size - 1} characters")


class _Reader:
    """A position in a frame, for the list fields of submit_multi and its response."""

    __slots__ = ("cid", "end", "frame", "pos", "seq")

    def __init__(self, frame: bytes, pos: int, cid: int, seq: int) -> None:
        self.frame = frame
        self.pos = pos
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
        nul = self.frame.find(b"\0", pos, pos + size)
        if nul < 0:
            raise _no_nul(self.cid, self.seq, name, size, status, self.end < pos + size)
        self.pos = nul + 1
        return self.frame[pos:nul].decode("latin-1")


def _read_dest_list(
    r: _Reader, size: int, status: int
) -> tuple[list[SmeDest | DistributionListDest], int]:
    count = r.u8("number_of_dests")
    if count > size:
        raise r.error(status, f"number_of_dests {count} is above {size}")
    dests: list[SmeDest | DistributionListDest] = []
    for _ in range(count):
        flag = r.u8("dest_flag")
        if flag == 1:
            ton = r.u8("dest_addr_ton")
            npi = r.u8("dest_addr_npi")
            dests.append(SmeDest(ton, npi, r.cstr("destination_addr", 21, S.ESME_RINVDSTADR)))
        elif flag == 2:
            dests.append(DistributionListDest(r.cstr("dl_name", 21, S.ESME_RINVDLNAME)))
        else:
            raise r.error(S.ESME_RINVDESTFLAG, f"dest_flag {flag} is not 1 or 2")
    return dests, r.pos


def _read_unsuccess_list(r: _Reader, size: int, status: int) -> tuple[list[UnsuccessSme], int]:
    count = r.u8("no_unsuccess")
    if count > size:
        raise r.error(status, f"no_unsuccess {count} is above {size}")
    smes = []
    for _ in range(count):
        ton = r.u8("dest_addr_ton")
        npi = r.u8("dest_addr_npi")
        address = r.cstr("destination_addr", 21, S.ESME_RINVDSTADR)
        pos = r.pos
        if pos + 4 > r.end:
            raise r.error(S.ESME_RINVCMDLEN, "body ends inside error_status_code")
        r.pos = pos + 4
        smes.append(UnsuccessSme(ton, npi, address, _unpack_u32(r.frame, pos)[0]))
    return smes, r.pos


def _read_tlvs(frame: bytes, pos: int, cid: int, seq: int) -> dict[int, Any]:
    end = len(frame)
    tlvs: dict[int, Any] = {}
    while pos < end:
        if end - pos < 4:
            raise _error(
                cid, seq, S.ESME_RINVOPTPARSTREAM, f"{end - pos} stray octets after the TLVs"
            )
        tag, length = _unpack_tlv_header(frame, pos)
        pos += 4
        stop = pos + length
        if stop > end:
            raise _error(
                cid,
                seq,
                S.ESME_RINVOPTPARSTREAM,
                f"TLV 0x{tag:04x} length {length} runs past the PDU",
            )
        if tag in tlvs:
            raise _error(cid, seq, S.ESME_RINVOPTPARSTREAM, f"TLV 0x{tag:04x} appears twice")
        plan = _TLV_PLANS.get(tag)
        if plan is None:
            tlvs[tag] = frame[pos:stop]
        elif plan[0] == _T_U8 and length == 1:
            tlvs[tag] = frame[pos]
        else:
            tlvs[tag] = _tlv_value(frame[pos:stop], tag, plan[0], plan[1], cid, seq)
        pos = stop
    return tlvs


def _tlv_value(raw: bytes, tag: int, kind: int, max_length: int, cid: int, seq: int) -> Any:
    length = len(raw)
    if kind == _T_U8:
        if length == 1:
            return raw[0]
    elif kind == _T_CSTR:
        if length <= max_length:
            nul = raw.find(b"\0")
            if nul < 0:
                if length < max_length:  # the final NUL is missing, as some SMSCs send it
                    return raw.decode("latin-1")
            elif nul == length - 1:
                return raw[:nul].decode("latin-1")
            else:
                raise _error(cid, seq, S.ESME_RINVOPTPARAMVAL, f"TLV 0x{tag:04x} has a NUL inside")
    elif kind == _T_U16:
        if length == 2:
            return _unpack_u16(raw)[0]
    elif kind == _T_U32:
        if length == 4:
            return _unpack_u32(raw)[0]
    elif kind == _T_OCTETS:
        if length <= max_length:
            return raw
    elif kind == _T_EMPTY:
        if length == 0:
            return True
    elif length == 3:  # TlvKind.NETWORK_ERROR
        return NetworkErrorCode(raw[0], _unpack_u16(raw, 1)[0])
    raise _error(cid, seq, S.ESME_RINVPARLEN, f"TLV 0x{tag:04x} has a bad length {length}")


# ---------------------------------------------------------------------------------------------
# Encode


def encode_pdu(pdu: Pdu) -> bytes:
    """Encode a PDU to its wire form. Raises PduEncodeError for fields that cannot be sent."""
    plan = _ENCODE_PLANS.get(type(pdu))
    if plan is None:
        raise PduEncodeError("command_id", f"{type(pdu).__name__} is not an SMPP 3.4 PDU class")
    command_id, steps, read_fields = plan
    try:
        values = read_fields(pdu)
    except AttributeError:  # a slot never set: an object made without __init__
        _check_before_unset(pdu)
        raise
    body = bytearray()
    append = body.append
    for kind, name, size, i in steps:
        value = values[i]
        if kind == _U8:
            if type(value) is not int:
                value = _uint(name, value, 0xFF)
            try:
                append(value)
            except ValueError:  # outside 0..255
                raise _uint_error(name, value, 0xFF) from None
        elif kind == _CSTR or kind == _DATE:  # noqa: SIM109 (quicker than a tuple lookup)
            if type(value) is str and not value:  # empty, as optional strings mostly are
                append(0)
                continue
            if type(value) is str and len(value) < size and "\0" not in value:
                try:
                    body += value.encode("latin-1")
                except UnicodeEncodeError:
                    _cstr_bytes(name, value, size)  # raises the error
            else:
                body += _cstr_bytes(name, value, size)  # raises, or takes a str subclass
            append(0)
            if kind == _DATE and len(value) != 0 and len(value) != size - 1:
                raise PduEncodeError(name, f"must be empty or {size - 1} characters")
        elif kind == _SM:
            if type(value) is not bytes or len(value) > size:
                _check_octets(name, value, size)  # raises, or takes bytearray or a subclass
            append(len(value))
            body += value
        elif kind == _DESTS:
            _put_dest_list(body, name, value, size)
        else:
            _put_unsuccess_list(body, name, value, size)
    tlvs = pdu.tlvs
    if type(tlvs) is not dict or tlvs:
        _put_tlvs(body, tlvs)
    status = pdu.command_status
    if type(status) is not int or not 0 <= status <= 0xFFFFFFFF:
        status = _uint("command_status", status, 0xFFFFFFFF)
    seq = pdu.sequence_number
    if type(seq) is not int or not 0 <= seq <= 0xFFFFFFFF:
        seq = _uint("sequence_number", seq, 0xFFFFFFFF)
    return _pack_header(HEADER_LENGTH + len(body), command_id, status, seq) + body


def _check_before_unset(pdu: Pdu) -> None:
    """Fields are checked in wire order, so when one of them is unset a bad value before it
    must raise first: encode a copy holding the values before it (defaults after it)."""
    probe = type(pdu)()
    for name, _ in body_layout(type(pdu)):
        if not hasattr(pdu, name):
            break
        setattr(probe, name, getattr(pdu, name))
    encode_pdu(probe)


def _is_uint(value: Any, maximum: int) -> bool:
    """``isinstance(value, int) and 0 <= value <= maximum``, by its own comparisons and by its
    int value (the one put on the wire: an int subclass may compare otherwise)."""
    return isinstance(value, int) and 0 <= value <= maximum and 0 <= index(value) <= maximum


def _uint(name: str, value: Any, maximum: int) -> int:
    if not _is_uint(value, maximum):
        raise _uint_error(name, value, maximum)
    return value


def _uint_error(name: str, value: Any, maximum: int) -> PduEncodeError:
    return PduEncodeError(name, f"must be an int from 0 to {maximum}, not {describe(value)}")


def _cstr_bytes(name: str, value: Any, size: int) -> bytes:
    """A C-Octet string of at most ``size`` octets, its NUL not included."""
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
    return raw


def _check_octets(name: str, value: Any, size: int) -> None:
    if not isinstance(value, (bytes, bytearray)):
        raise PduEncodeError(name, f"must be bytes, not {type(value).__name__}")
    if len(value) > size:
        raise PduEncodeError(name, f"is longer than {size} octets")


def _put_count(out: bytearray, name: str, value: Any, size: int) -> None:
    if not isinstance(value, list):
        raise PduEncodeError(name, f"must be a list, not {type(value).__name__}")
    if len(value) > size:
        raise PduEncodeError(name, f"has more than {size} entries")
    out.append(len(value))


def _put_cstr(out: bytearray, name: str, value: Any, size: int) -> None:
    out += _cstr_bytes(name, value, size)
    out.append(0)


def _put_dest_list(out: bytearray, name: str, value: Any, size: int) -> None:
    _put_count(out, name, value, size)
    for dest in value:
        if type(dest) is SmeDest:
            out.append(1)
            out.append(_uint("dest_addr_ton", dest.ton, 0xFF))
            out.append(_uint("dest_addr_npi", dest.npi, 0xFF))
            _put_cstr(out, "destination_addr", dest.address, 21)
        elif type(dest) is DistributionListDest:
            out.append(2)
            _put_cstr(out, "dl_name", dest.name, 21)
        else:
            raise PduEncodeError(name, "entries must be SmeDest or DistributionListDest")


def _put_unsuccess_list(out: bytearray, name: str, value: Any, size: int) -> None:
    _put_count(out, name, value, size)
    for sme in value:
        if type(sme) is not UnsuccessSme:
            raise PduEncodeError(name, "entries must be UnsuccessSme")
        out.append(_uint("dest_addr_ton", sme.ton, 0xFF))
        out.append(_uint("dest_addr_npi", sme.npi, 0xFF))
        _put_cstr(out, "destination_addr", sme.address, 21)
        out += _pack_u32(_uint("error_status_code", sme.error_status_code, 0xFFFFFFFF))


def _put_tlvs(out: bytearray, tlvs: Any) -> None:
    if not isinstance(tlvs, dict):
        raise PduEncodeError("tlvs", f"must be a dict, not {type(tlvs).__name__}")
    for tag, value in tlvs.items():
        if not isinstance(tag, int) or not 0 <= tag <= 0xFFFF or not 0 <= index(tag) <= 0xFFFF:
            raise PduEncodeError("tlvs", f"tag {describe(tag)} is not an int from 0 to 65535")
        raw = _tlv_bytes(tag, value)
        if len(raw) > 0xFFFF:
            raise PduEncodeError(f"tlvs[0x{tag:04x}]", "value is longer than 65535 octets")
        out += _pack_tlv_header(tag, len(raw))
        out += raw


def _tlv_bytes(tag: int, value: Any) -> bytes:
    plan = _TLV_PLANS.get(tag)
    if plan is None or plan[0] == _T_OCTETS:
        if not isinstance(value, (bytes, bytearray)):
            raise PduEncodeError(_tlv_name(tag), f"must be bytes, not {type(value).__name__}")
        if plan is not None and len(value) > plan[1]:
            raise PduEncodeError(_tlv_name(tag), f"is longer than {plan[1]} octets")
        return bytes(value)
    kind, max_length = plan
    if kind == _T_U8:  # the int checks of _is_uint, inline as this kind is the usual one
        if not isinstance(value, int) or not 0 <= value <= 0xFF or not 0 <= index(value) <= 0xFF:
            raise _uint_error(_tlv_name(tag), value, 0xFF)
        return bytes((value,))
    if kind == _T_CSTR:
        if type(value) is str and len(value) < max_length and "\0" not in value:
            try:
                return value.encode("latin-1") + b"\0"
            except UnicodeEncodeError:
                pass
        return _cstr_bytes(_tlv_name(tag), value, max_length) + b"\0"
    if kind == _T_U16:
        if not _is_uint(value, 0xFFFF):
            raise _uint_error(_tlv_name(tag), value, 0xFFFF)
        return _pack_u16(value)
    if kind == _T_U32:
        if not _is_uint(value, 0xFFFFFFFF):
            raise _uint_error(_tlv_name(tag), value, 0xFFFFFFFF)
        return _pack_u32(value)
    name = _tlv_name(tag)
    if kind == _T_EMPTY:
        if value is not True:
            raise PduEncodeError(name, "a presence flag takes the value True")
        return b""
    if type(value) is not NetworkErrorCode:
        raise PduEncodeError(name, "must be a NetworkErrorCode")
    if not _is_uint(value.network_type, 0xFF):
        raise PduEncodeError(name, "network_type must be an int from 0 to 255")
    if not _is_uint(value.error_code, 0xFFFF):
        raise PduEncodeError(name, "error_code must be an int from 0 to 65535")
    return bytes((value.network_type,)) + _pack_u16(value.error_code)


def _tlv_name(tag: int) -> str:
    return f"tlvs[0x{tag:04x}]"
