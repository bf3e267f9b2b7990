"""Hypothesis strategies and fuzz helpers for SMPP 3.4 PDUs, shared by tests and benchmarks.

Stable names (other test modules and ``benchmarks/bench_codec.py`` import them):

- ``pdus(classes=None)``: valid PDU objects of every class in ``PDU_CLASSES`` (or of the given
  classes), with random field values within each field's wire limits: Latin-1 strings without
  NUL, random ``short_message`` octets, random dest/unsuccess lists, and TLV dicts mixing known
  tags (plain int keys, values typed per ``TLV_SPECS``) with unknown/vendor tags carrying raw
  bytes; never a repeated tag.
- ``pdu_bytes(classes=None)``: valid encodings of ``pdus()``.
- ``mutated_frames()``: valid encodings damaged by one to three ``mutate`` steps.
- ``invalid_pdus()``: PDU-like objects that cannot be encoded (each has at least one bad
  field: wrong type, too long, out of range, bad TLV...); encoding must raise PduEncodeError.
- ``unusual_pdus()``: PDUs with odd but possibly valid values (bool, IntEnum and other int
  subclasses, str subclasses, bytearray, non-Latin-1 text...), for codec comparisons.
- ``mutate(frame, randint)``: one random mutation of a frame, drawing its choices from
  ``randint(lo, hi)`` (``random.Random().randint`` for plain fuzzing, or a hypothesis draw).
- ``field_values(wire)`` and ``tlv_values(tag)``: valid values for one field or TLV.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from hypothesis import strategies as st

from gateway.smpp import _pure_codec as pure
from gateway.smpp.constants import CommandId, Tag
from gateway.smpp.pdu import (
    PDU_CLASSES,
    TLV_SPECS,
    DistributionListDest,
    NetworkErrorCode,
    Pdu,
    SmeDest,
    SubmitSm,
    TlvKind,
    UnsuccessSme,
    Wire,
    WireKind,
    body_layout,
)

__all__ = [
    "ALL_CLASSES",
    "field_values",
    "invalid_pdus",
    "mutate",
    "mutated_frames",
    "pdu_bytes",
    "pdus",
    "tlv_values",
    "unusual_pdus",
]

ALL_CLASSES: tuple[type[Pdu], ...] = tuple(PDU_CLASSES[cid] for cid in sorted(PDU_CLASSES))
KNOWN_TAGS: tuple[int, ...] = tuple(sorted(int(tag) for tag in TLV_SPECS))
# Big enough to cross the native codec's stack buffer, small enough to keep examples quick.
OCTETS_DRAW_MAX = 4096
LIST_DRAW_MAX = 254

u8s = st.integers(0, 0xFF)
u16s = st.integers(0, 0xFFFF)
u32s = st.one_of(st.integers(0, 0xFF), st.integers(0, 0xFFFFFFFF))
_LATIN1 = st.characters(min_codepoint=1, max_codepoint=0xFF)


def latin1_text(max_size: int, min_size: int = 0) -> st.SearchStrategy[str]:
    """Latin-1 text without NUL, as C-Octet strings carry it."""
    return st.text(_LATIN1, min_size=min_size, max_size=max_size)


def _smpp_times() -> st.SearchStrategy[str]:
    """SMPP absolute or relative times, "YYMMDDhhmmsstnnp" (section 7.1.1)."""
    return st.builds(
        "{:02d}{:02d}{:02d}{:02d}{:02d}{:02d}{}{:02d}{}".format,
        st.integers(0, 99),
        st.integers(1, 12),
        st.integers(1, 28),
        st.integers(0, 23),
        st.integers(0, 59),
        st.integers(0, 59),
        st.integers(0, 9),
        st.integers(0, 48),
        st.sampled_from("+-R"),
    )


def _addresses() -> st.SearchStrategy[str]:
    return latin1_text(20)


def field_values(wire: Wire) -> st.SearchStrategy[Any]:
    """Valid values for a mandatory field with this wire description."""
    kind = wire.kind
    if kind == WireKind.U8:
        return u8s
    if kind == WireKind.CSTR:
        return latin1_text(wire.size - 1)
    if kind == WireKind.DATE:
        return st.one_of(st.just(""), _smpp_times(), latin1_text(16, min_size=16))
    if kind == WireKind.SHORT_MESSAGE:
        return st.binary(max_size=wire.size)
    if kind == WireKind.DEST_LIST:
        dest = st.one_of(
            st.builds(SmeDest, u8s, u8s, _addresses()),
            st.builds(DistributionListDest, _addresses()),
        )
        return st.lists(dest, max_size=min(wire.size, LIST_DRAW_MAX))
    if kind == WireKind.UNSUCCESS_LIST:
        sme = st.builds(UnsuccessSme, u8s, u8s, _addresses(), u32s)
        return st.lists(sme, max_size=min(wire.size, LIST_DRAW_MAX))
    raise AssertionError(f"no strategy for wire kind {kind!r}")


def tlv_values(tag: int) -> st.SearchStrategy[Any]:
    """Valid values for a TLV: typed per TLV_SPECS, raw bytes for other tags."""
    spec = TLV_SPECS.get(tag)
    if spec is None:
        return st.binary(max_size=64)
    kind = spec.kind
    if kind == TlvKind.U8:
        return u8s
    if kind == TlvKind.U16:
        return u16s
    if kind == TlvKind.U32:
        return u32s
    if kind == TlvKind.CSTR:
        return latin1_text(spec.max_length - 1)
    if kind == TlvKind.OCTETS:
        return st.binary(max_size=min(spec.max_length, OCTETS_DRAW_MAX))
    if kind == TlvKind.EMPTY:
        return st.just(True)
    if kind == TlvKind.NETWORK_ERROR:
        return st.builds(NetworkErrorCode, u8s, u16s)
    raise AssertionError(f"no strategy for TLV kind {kind!r}")


_tags = st.one_of(
    st.sampled_from(KNOWN_TAGS),
    st.integers(0, 0xFFFF).filter(lambda tag: tag not in TLV_SPECS),
)


@st.composite
def tlv_dicts(draw: st.DrawFn, max_size: int = 6) -> dict[int, Any]:
    tags = draw(st.lists(_tags, unique=True, max_size=max_size))
    return {tag: draw(tlv_values(tag)) for tag in tags}


@st.composite
def _pdu_of(draw: st.DrawFn, cls: type[Pdu]) -> Pdu:
    values = {name: draw(field_values(wire)) for name, wire in body_layout(cls)}
    return cls(
        command_status=draw(u32s),
        sequence_number=draw(u32s),
        tlvs=draw(tlv_dicts()),
        **values,
    )


def pdus(classes: Sequence[type[Pdu]] | None = None) -> st.SearchStrategy[Pdu]:
    """Valid PDUs of every class in PDU_CLASSES (or of ``classes``)."""
    return st.one_of([_pdu_of(cls) for cls in classes or ALL_CLASSES])


def pdu_bytes(classes: Sequence[type[Pdu]] | None = None) -> st.SearchStrategy[bytes]:
    """Valid encodings of random PDUs."""
    return pdus(classes).map(pure.encode_pdu)


# ---------------------------------------------------------------------------------------------
# Mutations

RandInt = Callable[[int, int], int]
_COMMAND_IDS = tuple(int(cid) for cid in CommandId)


def _random_bytes(randint: RandInt, size: int) -> bytes:
    return bytes(randint(0, 0xFF) for _ in range(size))


def _tlv_offsets(frame: bytes) -> list[int]:
    """Where the TLVs of a valid frame start (tag offsets); empty when it does not decode."""
    try:
        pdu = pure.decode_pdu(frame)
    except ValueError:
        return []
    pos = len(pure.encode_pdu(replace(pdu, tlvs={})))
    offsets = []
    while pos + 4 <= len(frame):
        offsets.append(pos)
        pos += 4 + int.from_bytes(frame[pos + 2 : pos + 4], "big")
    return offsets


def mutate(frame: bytes, randint: RandInt) -> bytes:
    """One random mutation of a frame (which may leave command_length wrong)."""
    data = bytearray(frame)
    size = len(data)
    op = randint(0, 11)
    if op == 0 and size:  # truncate
        del data[randint(0, size - 1) :]
    elif op == 1 and size:  # flip one bit
        data[randint(0, size - 1)] ^= 1 << randint(0, 7)
    elif op == 2 and size:  # overwrite one octet
        data[randint(0, size - 1)] = randint(0, 0xFF)
    elif op == 3:  # insert octets, NULs being the interesting ones
        fill = bytes(randint(1, 4)) if randint(0, 1) else _random_bytes(randint, randint(1, 8))
        pos = randint(0, size)
        data[pos:pos] = fill
    elif op == 4 and size:  # delete a run
        pos = randint(0, size - 1)
        del data[pos : pos + randint(1, 8)]
    elif op == 5:  # command_length off by a little or by a lot
        value = size + randint(-3, 3) if randint(0, 1) else randint(0, 0xFFFFFFFF)
        data[0:4] = (value & 0xFFFFFFFF).to_bytes(4, "big")
    elif op == 6 and size >= 8:  # another command_id: its body read with another layout
        known = randint(0, 3)  # mostly a real command_id
        cid = _COMMAND_IDS[randint(0, len(_COMMAND_IDS) - 1)] if known else randint(0, 2**32 - 1)
        data[4:8] = cid.to_bytes(4, "big")
    elif op == 7:  # a bad TLV length
        offsets = _tlv_offsets(bytes(data))
        if offsets:
            pos = offsets[randint(0, len(offsets) - 1)] + 2
            length = int.from_bytes(data[pos : pos + 2], "big")
            length = length + randint(-2, 2) if randint(0, 1) else randint(0, 0xFFFF)
            data[pos : pos + 2] = (length & 0xFFFF).to_bytes(2, "big")
    elif op == 8:  # append a TLV, often a known tag with a wrong size, or stray octets
        tag = KNOWN_TAGS[randint(0, len(KNOWN_TAGS) - 1)] if randint(0, 2) else randint(0, 0xFFFF)
        value = _random_bytes(randint, randint(0, 6))
        header = tag.to_bytes(2, "big") + len(value).to_bytes(2, "big")
        data += (header + value)[: randint(1, 4 + len(value))]
    elif op == 9 and size >= 8:  # header only: an empty body
        del data[16:]
    elif op == 10 and size > 16:  # a NUL or a non-NUL where it changes C-Octet string ends
        data[randint(16, size - 1)] = 0 if randint(0, 1) else randint(1, 0xFF)
    elif op == 11:  # repeat a TLV
        offsets = _tlv_offsets(bytes(data))
        if offsets:
            start = offsets[randint(0, len(offsets) - 1)]
            end = start + 4 + int.from_bytes(data[start + 2 : start + 4], "big")
            data += data[start:end]
    if randint(0, 9) < 7 and len(data) >= 4:  # mostly keep the framing right to reach the body
        data[0:4] = len(data).to_bytes(4, "big")
    return bytes(data)


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    """Valid encodings damaged by one to three mutations."""
    frame = draw(pdu_bytes())

    def randint(lo: int, hi: int) -> int:
        return draw(st.integers(lo, hi))

    for _ in range(draw(st.integers(1, 3))):
        frame = mutate(frame, randint)
    return frame


# ---------------------------------------------------------------------------------------------
# Invalid and unusual PDU objects


class _Str(str):
    pass


class _Bytes(bytes):
    pass


class _Int(int):
    pass


class _Color(enum.IntEnum):
    RED = 1
    BIG = 70000


class _NotAPdu(SubmitSm):
    """A subclass of a PDU class is not a PDU class: the codecs refuse it."""


_NOT_INT = st.sampled_from([None, 1.0, "1", b"\x01", [1], 1j])
_BAD_INT = st.one_of(
    _NOT_INT, st.integers(max_value=-1), st.integers(min_value=2**32, max_value=2**70)
)


def _bad_values(wire: Wire) -> st.SearchStrategy[Any]:
    kind = wire.kind
    if kind == WireKind.U8:
        return st.one_of(_NOT_INT, st.integers(max_value=-1), st.integers(min_value=256))
    if kind in (WireKind.CSTR, WireKind.DATE):
        too_long = latin1_text(wire.size + 3, min_size=wire.size)
        bad = [
            st.sampled_from([None, b"abc", 12, ["a"], bytearray(b"a")]),
            too_long,
            too_long.map(_Str),
            latin1_text(4).map(lambda text: text + "\0"),
            latin1_text(4).map(lambda text: text + "\u20ac"),  # not Latin-1
            latin1_text(4).map(lambda text: _Str(text + "\U0001f600")),
        ]
        if kind == WireKind.DATE:
            bad.append(latin1_text(15, min_size=1))  # neither empty nor 16 characters
        return st.one_of(bad)
    if kind == WireKind.SHORT_MESSAGE:
        return st.one_of(
            st.sampled_from([None, "text", 5, [1], memoryview(b"x")]),
            st.binary(min_size=wire.size + 1, max_size=wire.size + 8),
            st.binary(min_size=wire.size + 1, max_size=wire.size + 8).map(bytearray),
        )
    entry = st.sampled_from(
        [
            ("x",),
            (1, 1, "a"),
            SmeDest(256, 0, "a"),
            SmeDest(0, 0, "a" * 21),
            SmeDest(0, 0, b"a"),
            DistributionListDest(None),
            UnsuccessSme(0, 0, "a", -1),
            UnsuccessSme(0, -1, "a", 0),
            UnsuccessSme(0, 0, "\0", 0),
            None,
        ]
    )
    return st.one_of(
        st.sampled_from([None, (), "abc", {}]),
        st.lists(entry, min_size=1, max_size=3),
        st.just([SmeDest(0, 0, "1")] * (wire.size + 1)),
    )


def _bad_tlv_values(tag: int) -> st.SearchStrategy[Any]:
    spec = TLV_SPECS.get(tag)
    if spec is None:
        return st.one_of(
            st.sampled_from([None, "text", 5, True, [1]]),
            st.just(b"\0" * 0x10000),
        )
    kind = spec.kind
    if kind in (TlvKind.U8, TlvKind.U16, TlvKind.U32):
        limit = {TlvKind.U8: 0xFF, TlvKind.U16: 0xFFFF, TlvKind.U32: 0xFFFFFFFF}[kind]
        return st.one_of(_NOT_INT, st.integers(max_value=-1), st.integers(min_value=limit + 1))
    if kind == TlvKind.CSTR:
        return st.one_of(
            st.sampled_from([None, b"x", 1]),
            latin1_text(spec.max_length + 2, min_size=spec.max_length),
            st.just("a\0b"),
            st.just("\u0100"),
        )
    if kind == TlvKind.OCTETS:
        return st.one_of(
            st.sampled_from([None, "x", 1]),
            st.just(b"x" * (spec.max_length + 1)),
        )
    if kind == TlvKind.EMPTY:
        return st.sampled_from([False, 1, None, b"", "True"])
    return st.one_of(  # NETWORK_ERROR
        st.sampled_from([None, (3, 1), b"\x03\x00\x01"]),
        st.builds(NetworkErrorCode, st.one_of(_NOT_INT, st.integers(256, 999)), u16s),
        st.builds(NetworkErrorCode, u8s, st.one_of(_NOT_INT, st.integers(0x10000, 0x20000))),
    )


@st.composite
def _spoil(draw: st.DrawFn, pdu: Pdu) -> Pdu:
    """Replace one field, header field or TLV of ``pdu`` with a bad value."""
    layout = body_layout(type(pdu))
    targets = ["command_status", "sequence_number", "tlvs", "tlv_value", "tlv_tag", "class"]
    targets += [name for name, _ in layout] * 2
    target = draw(st.sampled_from(targets))
    if target.startswith("tlv_") and not isinstance(pdu.tlvs, dict):
        pdu.tlvs = {}  # an earlier spoil replaced the dict; any bad TLV still spoils the PDU
    if target in ("command_status", "sequence_number"):
        setattr(pdu, target, draw(_BAD_INT))
    elif target == "tlvs":
        pdu.tlvs = draw(st.sampled_from([None, [], [(5, 1)], "tlvs", ((5, 1),)]))
    elif target == "tlv_value":
        tag = draw(_tags)
        pdu.tlvs[tag] = draw(_bad_tlv_values(tag))
    elif target == "tlv_tag":
        bad_tag = st.one_of(
            st.sampled_from([None, "5", 5.0, b"\x00\x05", (5,)]),
            st.integers(max_value=-1),
            st.integers(min_value=0x10000, max_value=2**40),
        )
        pdu.tlvs[draw(bad_tag)] = b""
    elif target == "class":
        return draw(st.sampled_from([object(), None, "submit_sm", _NotAPdu()]))
    else:
        wire = dict(layout)[target]
        setattr(pdu, target, draw(_bad_values(wire)))
    return pdu


@st.composite
def invalid_pdus(draw: st.DrawFn) -> Any:
    """Objects that encode_pdu must refuse with PduEncodeError (one to three bad fields)."""
    pdu = draw(pdus())
    for _ in range(draw(st.integers(1, 3))):
        pdu = draw(_spoil(pdu))
        if not isinstance(pdu, Pdu) or type(pdu) is _NotAPdu:
            break
    return pdu


def _unusual_ints(value: int) -> st.SearchStrategy[Any]:
    variants: list[Any] = [value, _Int(value)]
    if value in (0, 1):
        variants.append(bool(value))
    if value == 1:
        variants.append(_Color.RED)
    return st.sampled_from(variants)


@st.composite
def unusual_pdus(draw: st.DrawFn) -> Pdu:
    """Valid PDUs whose values have unusual types: int subclasses, bool, IntEnum tags, str and
    bytes subclasses, bytearray; sometimes also one invalid value."""
    pdu = draw(pdus())
    for name, wire in body_layout(type(pdu)):
        value = getattr(pdu, name)
        if wire.kind == WireKind.U8 and draw(st.booleans()):
            setattr(pdu, name, draw(_unusual_ints(value)))
        elif wire.kind in (WireKind.CSTR, WireKind.DATE) and draw(st.booleans()):
            setattr(pdu, name, _Str(value))
        elif wire.kind == WireKind.SHORT_MESSAGE and draw(st.booleans()):
            setattr(pdu, name, draw(st.sampled_from([bytearray, _Bytes]))(value))
    tlvs = {}
    for tag, value in pdu.tlvs.items():
        key = Tag(tag) if tag in TLV_SPECS and draw(st.booleans()) else tag
        if isinstance(value, bytes) and draw(st.booleans()):
            value = bytearray(value)
        elif type(value) is int and draw(st.booleans()):
            value = draw(_unusual_ints(value))
        tlvs[key] = value
    if draw(st.booleans()):
        tlvs[_Int(0x1400)] = b"vendor"
    if draw(st.booleans()):
        tlvs[_Color.BIG] = b""  # an IntEnum tag above 65535
    pdu.tlvs = tlvs
    if draw(st.booleans()):
        pdu.sequence_number = draw(_unusual_ints(1))
    return pdu
