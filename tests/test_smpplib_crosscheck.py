"""Cross-check against smpplib, an independent SMPP implementation.

For every PDU type smpplib builds, random PDUs encoded by smpplib decode correctly with our
codecs, and our encodings decode correctly with smpplib. Fields where smpplib departs from SMPP
3.4 are listed in SMPPLIB_DEVIATIONS and left out; the test fails if that list goes stale.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
import smpplib.command
import smpplib.consts
import smpplib.smpp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.smpp.constants import CommandId
from gateway.smpp.pdu import (
    PDU_CLASSES,
    TLV_SPECS,
    NetworkErrorCode,
    TlvKind,
    WireKind,
    body_layout,
)

# (command, field): why smpplib's encoding differs from SMPP 3.4 (v3.4 issue 1.2 section 5.3.2)
SMPPLIB_DEVIATIONS = {
    ("submit_sm", "source_addr_subunit"): "2 octets in smpplib, 1 in the spec",
    ("submit_sm", "source_subaddress"): "C-Octet string in smpplib, octet string in the spec",
    ("submit_sm", "dest_subaddress"): "C-Octet string in smpplib, octet string in the spec",
    ("submit_sm", "alert_on_message_delivery"): "smpplib never encodes presence flags",
    ("deliver_sm", "source_subaddress"): "C-Octet string in smpplib, octet string in the spec",
    ("deliver_sm", "dest_subaddress"): "C-Octet string in smpplib, octet string in the spec",
    ("data_sm", "source_telematics_id"): "2 octets in smpplib, 1 in the spec",
    ("data_sm", "source_subaddress"): "C-Octet string in smpplib, octet string in the spec",
    ("data_sm", "dest_subaddress"): "C-Octet string in smpplib, octet string in the spec",
    ("data_sm", "callback_num_atag"): "C-Octet string in smpplib, octet string in the spec",
    ("data_sm", "alert_on_message_delivery"): "smpplib never encodes presence flags",
    ("data_sm_resp", "delivery_failure_reason"): "C-Octet string in smpplib, 1 octet int in spec",
    ("data_sm_resp", "network_error_code"): "C-Octet string in smpplib, 3 octets in the spec",
}


def _factory_supports(name: str) -> bool:
    try:
        smpplib.command.factory(name, client=_Client(), sequence=1)
    except smpplib.exceptions.UnknownCommandError:
        return False
    return True


class _Client:
    sequence = 0

    def next_sequence(self) -> int:
        return 1


SMPPLIB_COMMANDS = sorted(n for n in smpplib.command_codes.commands if _factory_supports(n))
MESSAGE_PAYLOAD = 0x0424
INT_SIZES = {TlvKind.U8: 1, TlvKind.U16: 2, TlvKind.U32: 4}


def _our_class(name: str) -> type:
    return PDU_CLASSES[CommandId[name.upper()]]


def comparable_fields(name: str) -> tuple[list[tuple[str, Any]], list[tuple[str, int]], set]:
    """Mandatory (name, Wire) and TLV (name, tag) fields both sides encode the same way."""
    lib_pdu = smpplib.command.factory(name, client=_Client(), sequence=1)
    ours = dict(body_layout(_our_class(name)))
    mandatory, tlvs, deviations = [], [], set()
    for field in lib_pdu.params_order:
        param = lib_pdu.params[field]
        if not lib_pdu.field_is_optional(field):
            if field != "sm_length":
                assert field in ours, (name, field)
                mandatory.append((field, ours[field]))
            continue
        tag = smpplib.consts.OPTIONAL_PARAMS[field]
        spec = TLV_SPECS[tag]
        compatible = (
            (param.type is int and INT_SIZES.get(spec.kind) == getattr(param, "size", None))
            or (param.type is str and spec.kind == TlvKind.CSTR)
            or (
                param.type is smpplib.command.ostr
                and spec.kind in (TlvKind.OCTETS, TlvKind.NETWORK_ERROR)
            )
        )
        if compatible:
            tlvs.append((field, tag))
        else:
            deviations.add((name, field))
    return mandatory, tlvs, deviations


def test_deviation_list_is_current() -> None:
    found = set().union(*(comparable_fields(n)[2] for n in SMPPLIB_COMMANDS))
    assert found == set(SMPPLIB_DEVIATIONS)


def test_smpplib_covers_most_commands() -> None:
    assert len(SMPPLIB_COMMANDS) >= 20


ascii_text = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=64)


@st.composite
def pdu_values(draw: st.DrawFn, name: str) -> tuple[dict[str, Any], dict[int, Any]]:
    mandatory, tlvs, _ = comparable_fields(name)
    lib_pdu = smpplib.command.factory(name, client=_Client(), sequence=1)
    fields: dict[str, Any] = {}
    for field, wire in mandatory:
        if wire.kind == WireKind.U8:
            fields[field] = draw(st.integers(0, 255))
        elif wire.kind == WireKind.DATE:
            fields[field] = draw(st.sampled_from(["", "261128120000000+", "000001000000000R"]))
        elif wire.kind == WireKind.SHORT_MESSAGE:
            fields[field] = draw(st.binary(max_size=254))
        elif field == "message_id" and name == "query_sm":  # smpplib refuses an empty one
            fields[field] = draw(ascii_text.filter(bool))
        else:
            limit = min(wire.size, lib_pdu.params[field].max) - 1
            fields[field] = draw(ascii_text.map(lambda s, n=limit: s[:n]))
    values: dict[int, Any] = {}
    for _field, tag in draw(st.lists(st.sampled_from(tlvs), unique=True)) if tlvs else []:
        spec = TLV_SPECS[tag]
        if spec.kind in INT_SIZES:
            values[tag] = draw(st.integers(0, 256 ** INT_SIZES[spec.kind] - 1))
        elif spec.kind == TlvKind.CSTR:
            values[tag] = draw(ascii_text.filter(bool).map(lambda s, n=spec.max_length: s[: n - 1]))
        elif spec.kind == TlvKind.NETWORK_ERROR:
            values[tag] = NetworkErrorCode(draw(st.integers(0, 255)), draw(st.integers(1, 65535)))
        else:
            values[tag] = draw(st.binary(min_size=1, max_size=min(spec.max_length, 200)))
    if MESSAGE_PAYLOAD in values and "short_message" in fields:
        fields["short_message"] = b""  # SMPP 3.4 5.3.2.32: one or the other (smpplib enforces it)
    return fields, values


def _lib_value(tag: int, value: Any) -> Any:
    if isinstance(value, NetworkErrorCode):
        return bytes((value.network_type,)) + value.error_code.to_bytes(2, "big")
    return value


def _tlv_name(tag: int) -> str:
    return next(k for k, v in smpplib.consts.OPTIONAL_PARAMS.items() if v == tag)


def _lib_field(lib_pdu: Any, field: str, ours: Any) -> Any:
    """smpplib's parsed value in our terms: C-Octet strings come back as bytes, an empty
    short_message at the end of the body as None."""
    value = getattr(lib_pdu, field)
    if isinstance(ours, bytes):
        return value or b""
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _settings() -> Any:
    return settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", SMPPLIB_COMMANDS)
def test_smpplib_encodes_we_decode(codec: ModuleType, name: str) -> None:
    @_settings()
    @given(pdu_values(name), st.integers(1, 0x7FFFFFFF), st.sampled_from([0, 0x58]))
    def check(values: tuple[dict, dict], seq: int, status: int) -> None:
        fields, tlvs = values
        lib_pdu = smpplib.smpp.make_pdu(name, client=_Client(), sequence=seq)
        lib_pdu.sequence, lib_pdu.status = seq, status
        for field, value in fields.items():
            setattr(lib_pdu, field, value)
        for tag, value in tlvs.items():
            setattr(lib_pdu, _tlv_name(tag), _lib_value(tag, value))
        ours = codec.decode_pdu(lib_pdu.generate())
        assert type(ours) is _our_class(name)
        assert (ours.sequence_number, ours.command_status) == (seq, status)
        for field, value in fields.items():
            assert getattr(ours, field) == value, field
        assert ours.tlvs == tlvs

    check()


@pytest.mark.parametrize("name", SMPPLIB_COMMANDS)
def test_we_encode_smpplib_decodes(codec: ModuleType, name: str) -> None:
    @_settings()
    @given(pdu_values(name), st.integers(1, 0x7FFFFFFF), st.sampled_from([0, 0x58]))
    def check(values: tuple[dict, dict], seq: int, status: int) -> None:
        fields, tlvs = values
        ours = _our_class(name)(sequence_number=seq, command_status=status, tlvs=tlvs, **fields)
        lib_pdu = smpplib.smpp.parse_pdu(
            codec.encode_pdu(ours), client=_Client(), sequence=0, allow_unknown_opt_params=True
        )
        assert lib_pdu.command == name
        assert (lib_pdu.sequence, lib_pdu.status) == (seq, status)
        for field, value in fields.items():
            assert _lib_field(lib_pdu, field, value) == value, field
        for tag, value in tlvs.items():
            expected = _lib_value(tag, value)
            assert _lib_field(lib_pdu, _tlv_name(tag), expected) == expected, hex(tag)

    check()
