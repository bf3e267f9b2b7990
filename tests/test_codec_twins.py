"""The native (Cython) SMPP codec and its pure-Python twin give identical results.

Equal bytes, equal PDUs, and equal errors (PduDecodeError / PduEncodeError compare by their
fields) for valid PDUs, damaged frames, invalid PDU objects and unusual value types. A missing
native build fails these tests: it is never a reason to skip them.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pdu_strategies import (
    ALL_CLASSES,
    invalid_pdus,
    mutated_frames,
    pdu_bytes,
    pdus,
    unusual_pdus,
)

from gateway.smpp import _pure_codec as pure
from gateway.smpp.constants import CommandStatus, Tag
from gateway.smpp.errors import PduDecodeError, PduEncodeError
from gateway.smpp.pdu import DataSm, DeliverSm, Pdu, SmeDest, SubmitMulti, SubmitSm, body_layout

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def native_codec() -> ModuleType:
    try:
        return importlib.import_module("gateway.smpp._native_codec")
    except ImportError as exc:
        pytest.fail(
            f"the native SMPP codec is not built ({exc}); run scripts/setup.sh or "
            "`.venv/bin/python setup.py build_ext --inplace` (the twin tests never skip)"
        )


def _decode_outcome(codec: ModuleType, frame: Any) -> tuple[str, Any]:
    try:
        return "ok", codec.decode_pdu(frame)
    except PduDecodeError as exc:
        return "error", exc


def _encode_outcome(codec: ModuleType, pdu: Any) -> tuple[str, Any]:
    try:
        return "ok", codec.encode_pdu(pdu)
    except PduEncodeError as exc:
        return "error", exc


def _assert_same_pdu(a: Pdu, b: Pdu) -> None:
    assert type(a) is type(b)
    assert a == b
    # == on int fields would let True pass for 1: compare the value types too.
    names = ["command_status", "sequence_number", *(name for name, _ in body_layout(type(a)))]
    assert [type(getattr(a, n)) for n in names] == [type(getattr(b, n)) for n in names]
    assert [(type(k), type(v)) for k, v in a.tlvs.items()] == [
        (type(k), type(v)) for k, v in b.tlvs.items()
    ]


@SETTINGS
@given(pdus())
def test_round_trip_and_equal_bytes(pdu: Pdu) -> None:
    native = native_codec()
    frame = pure.encode_pdu(pdu)
    assert native.encode_pdu(pdu) == frame
    for codec in (pure, native):
        decoded = codec.decode_pdu(frame)
        assert decoded == pdu
    _assert_same_pdu(native.decode_pdu(frame), pure.decode_pdu(frame))


@SETTINGS
@given(pdu_bytes())
def test_decode_of_valid_frames_is_equal(frame: bytes) -> None:
    native = native_codec()
    _assert_same_pdu(native.decode_pdu(frame), pure.decode_pdu(frame))
    assert native.encode_pdu(native.decode_pdu(frame)) == frame


@settings(SETTINGS, max_examples=1000)
@given(mutated_frames())
def test_mutated_frames_give_equal_results(frame: bytes) -> None:
    native = native_codec()
    expected = _decode_outcome(pure, frame)
    actual = _decode_outcome(native, frame)
    assert actual[0] == expected[0], (actual, expected)
    if expected[0] == "ok":
        _assert_same_pdu(actual[1], expected[1])
    else:
        assert actual[1] == expected[1]
        assert str(actual[1]) == str(expected[1])


@settings(SETTINGS, max_examples=150)
@given(pdu_bytes())
def test_every_truncation_gives_equal_results(frame: bytes) -> None:
    native = native_codec()
    for size in range(len(frame)):
        cut = frame[:size]
        fixed = size.to_bytes(4, "big") + cut[4:] if size >= 4 else cut
        for damaged in (cut, fixed):
            expected = _decode_outcome(pure, damaged)
            actual = _decode_outcome(native, damaged)
            assert actual[0] == expected[0]
            if expected[0] == "ok":
                _assert_same_pdu(actual[1], expected[1])
            else:
                assert actual[1] == expected[1]


@settings(SETTINGS, max_examples=500)
@given(st.binary(max_size=64), st.sampled_from([bytes, bytearray, memoryview]))
def test_random_octets_and_buffer_types(data: bytes, kind: type) -> None:
    native = native_codec()
    framed = len(data).to_bytes(4, "big") + data[4:] if len(data) >= 4 else data
    for frame in (kind(data), kind(framed)):
        expected = _decode_outcome(pure, frame)
        actual = _decode_outcome(native, frame)
        assert actual[0] == expected[0]
        if expected[0] == "ok":
            _assert_same_pdu(actual[1], expected[1])
        else:
            assert actual[1] == expected[1]


@settings(SETTINGS, max_examples=600)
@given(invalid_pdus())
def test_invalid_pdus_raise_equal_errors(pdu: Any) -> None:
    native = native_codec()
    with pytest.raises(PduEncodeError) as expected:
        pure.encode_pdu(pdu)
    with pytest.raises(PduEncodeError) as actual:
        native.encode_pdu(pdu)
    assert actual.value == expected.value
    assert str(actual.value) == str(expected.value)


@SETTINGS
@given(unusual_pdus())
def test_unusual_value_types_give_equal_results(pdu: Pdu) -> None:
    native = native_codec()
    assert _encode_outcome(native, pdu) == _encode_outcome(pure, pdu)


@pytest.mark.parametrize("cls", [c for c in ALL_CLASSES if c.command_id & 0x80000000])
def test_response_with_empty_body_takes_defaults(cls: type[Pdu]) -> None:
    native = native_codec()
    frame = (16).to_bytes(4, "big") + cls.command_id.to_bytes(4, "big") + bytes(4) + b"\0\0\0\x07"
    decoded = native.decode_pdu(frame)
    _assert_same_pdu(decoded, pure.decode_pdu(frame))
    assert decoded == cls(sequence_number=7)


def test_large_values_outgrow_the_stack_buffer() -> None:
    native = native_codec()
    big = [
        DataSm(tlvs={Tag.MESSAGE_PAYLOAD: bytes(range(256)) * 255 + b"x" * 255}),
        SubmitMulti(dest_addresses=[SmeDest(1, 1, "4" * 20)] * 254, short_message=b"m" * 254),
        DeliverSm(tlvs={0x1400 + i: bytes([i]) * 700 for i in range(40)}),
    ]
    for pdu in big:
        frame = pure.encode_pdu(pdu)
        assert len(frame) > 4096
        assert native.encode_pdu(pdu) == frame
        _assert_same_pdu(native.decode_pdu(frame), pure.decode_pdu(frame))


class _OwnHashInt(int):
    """An int subclass with its own hash and equality: TLV tags of this type are looked up
    the slow way, as the pure codec does."""

    def __hash__(self) -> int:
        return 1

    def __eq__(self, other: object) -> bool:
        return int(self) == other


@pytest.mark.parametrize(
    "tlvs",
    [
        {_OwnHashInt(Tag.MESSAGE_STATE): 2},
        {_OwnHashInt(Tag.MESSAGE_STATE): b"\x02"},
        {_OwnHashInt(1): b"raw"},
        {_OwnHashInt(70000): b""},
    ],
)
def test_tlv_tags_with_their_own_hash(tlvs: dict[int, Any]) -> None:
    native = native_codec()
    pdu = SubmitSm(tlvs=tlvs)
    assert _encode_outcome(native, pdu) == _encode_outcome(pure, pdu)


@pytest.mark.parametrize(
    "tlvs",
    [
        {Tag.MESSAGE_PAYLOAD: b"x" * 65536},
        {0x1400: b"x" * 65536},
        {0x1400: bytearray(65536)},
        {0x1400 + i: b"" for i in range(20)} | {0x1400: "late"},
    ],
)
def test_tlv_errors_after_other_tlvs(tlvs: dict[int, Any]) -> None:
    native = native_codec()
    pdu = SubmitSm(tlvs={Tag.MESSAGE_STATE: 2, **tlvs})
    with pytest.raises(PduEncodeError) as expected:
        pure.encode_pdu(pdu)
    with pytest.raises(PduEncodeError) as actual:
        native.encode_pdu(pdu)
    assert actual.value == expected.value


def test_many_tlvs_repeat_detection() -> None:
    native = native_codec()
    tlv = b"\x14\x00\x00\x00"
    body = b"".join(i.to_bytes(2, "big") + b"\0\0" for i in range(0x1401, 0x1421))
    for extra in (tlv, b"\x14\x20\x00\x00", b"\x14\x30\x00\x00"):  # repeated late, or new
        frame = pure.encode_pdu(SubmitSm())
        frame = frame[16:] + tlv + body + extra
        frame = (len(frame) + 16).to_bytes(4, "big") + bytes.fromhex("00000004") + bytes(8) + frame
        assert _decode_outcome(native, frame) == _decode_outcome(pure, frame)


def test_bad_inputs_raise_alike() -> None:
    native = native_codec()
    for frame in ("not bytes", None, 3.5):
        with pytest.raises(TypeError):
            pure.decode_pdu(frame)
        with pytest.raises(TypeError):
            native.decode_pdu(frame)
    unset = object.__new__(SubmitSm)
    with pytest.raises(AttributeError):
        pure.encode_pdu(unset)
    with pytest.raises(AttributeError):
        native.encode_pdu(unset)


def test_decode_error_carries_the_header() -> None:
    native = native_codec()
    pdu = SubmitSm(sequence_number=9, source_addr="1", destination_addr="2" * 20)
    frame = bytearray(pure.encode_pdu(pdu))
    # source_addr starts at 19 (after service_type's NUL, ton and npi): drop its NUL, and the
    # next 19 octets' too, so no NUL is within its 21 octets.
    frame[19:40] = b"1" * 21
    expected = PduDecodeError(
        CommandStatus.ESME_RINVSRCADR, "source_addr has no NUL within 21 octets", 4, 9
    )
    for codec in (pure, native):
        assert _decode_outcome(codec, bytes(frame)) == ("error", expected)


# ---------------------------------------------------------------------------------------------
# The codec front's choice of backend


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "GATEWAY_PURE"}
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), environ.get("PYTHONPATH", "")])
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environ,
        cwd=ROOT,
        timeout=60,
        check=True,
    )


def test_backend_is_native_when_built() -> None:
    native_codec()
    assert _run("from gateway.smpp import codec; print(codec.BACKEND)").stdout.strip() == "native"


def test_gateway_pure_forces_the_pure_codec() -> None:
    code = "from gateway.smpp import codec; print(codec.BACKEND, codec.encode_pdu.__module__)"
    result = _run(code, GATEWAY_PURE="1")
    assert result.stdout.split() == ["pure", "gateway.smpp._pure_codec"]


def test_missing_extension_warns_once_and_falls_back() -> None:
    code = """
        import logging, sys

        class HideNative:
            def find_spec(self, name, path=None, target=None):
                if name == "gateway.smpp._native_codec":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None

        sys.meta_path.insert(0, HideNative())
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s %(message)s")
        from gateway.smpp import codec
        from gateway.smpp.pdu import EnquireLink
        pdu = EnquireLink(sequence_number=3)
        assert codec.decode_pdu(codec.encode_pdu(pdu)) == pdu
        print(codec.BACKEND)
    """
    result = _run(code)
    assert result.stdout.strip() == "pure"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("WARNING gateway.smpp.codec native SMPP codec unavailable")
