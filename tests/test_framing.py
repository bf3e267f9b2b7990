"""The streaming frame decoder: any chunking gives the same PDUs; bad lengths stop the stream."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.smpp.codec import FrameDecoder, encode_pdu
from gateway.smpp.constants import CommandId
from gateway.smpp.constants import CommandStatus as S
from gateway.smpp.errors import FramingError, PduDecodeError
from gateway.smpp.pdu import DeliverSm, EnquireLink, SubmitSm, SubmitSmResp

PDUS = [
    EnquireLink(sequence_number=1),
    SubmitSm(sequence_number=2, destination_addr="447700900123", short_message=b"x" * 140),
    SubmitSmResp(sequence_number=2, message_id="0badc0de"),
    DeliverSm(sequence_number=3, esm_class=4, short_message=b"id:1 stat:DELIVRD"),
]
STREAM = b"".join(encode_pdu(p) for p in PDUS)


def drain(decoder: FrameDecoder) -> list[object]:
    return list(decoder)


def test_one_byte_at_a_time() -> None:
    decoder = FrameDecoder()
    out = []
    for i in range(len(STREAM)):
        decoder.feed(STREAM[i : i + 1])
        out += drain(decoder)
    assert out == PDUS
    assert decoder.buffered == 0


def test_many_pdus_in_one_chunk() -> None:
    decoder = FrameDecoder()
    decoder.feed(STREAM * 50)
    assert drain(decoder) == PDUS * 50


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) * 3), min_size=1, max_size=40))
def test_any_chunking(cuts: list[int]) -> None:
    data = STREAM * 3
    decoder = FrameDecoder()
    out: list[object] = []
    pos = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        decoder.feed(data[pos:cut])
        pos = max(pos, cut)
        out += drain(decoder)
    assert out == PDUS * 3


@pytest.mark.parametrize("length", [0, 15, 65537, 0xFFFFFFFF])
def test_bad_command_length_is_rejected_before_the_body(length: int) -> None:
    decoder = FrameDecoder(max_command_length=65536)
    decoder.feed(struct.pack(">I", length))  # only the length: no body was buffered yet
    with pytest.raises(FramingError) as info:
        decoder.next_pdu()
    assert info.value.command_status == S.ESME_RINVCMDLEN
    assert decoder.buffered == 0
    decoder.feed(b"more")
    with pytest.raises(FramingError):
        decoder.next_pdu()  # the stream stays failed: its framing is lost


def test_framing_error_carries_header_when_available() -> None:
    decoder = FrameDecoder(max_command_length=1024)
    decoder.feed(struct.pack(">IIII", 5000, CommandId.SUBMIT_SM, 0, 99))
    with pytest.raises(FramingError) as info:
        decoder.next_pdu()
    assert (info.value.command_id, info.value.sequence_number) == (CommandId.SUBMIT_SM, 99)


def test_bad_pdu_is_consumed_and_the_stream_goes_on() -> None:
    bad = struct.pack(">IIII", 16, 0x77, 0, 5)
    decoder = FrameDecoder()
    decoder.feed(bad + STREAM)
    with pytest.raises(PduDecodeError) as info:
        decoder.next_pdu()
    assert info.value.command_status == S.ESME_RINVCMDID
    assert info.value.sequence_number == 5
    assert drain(decoder) == PDUS


def test_random_garbage_never_escapes_typed_errors() -> None:
    rng = random.Random(1234)
    for _ in range(2000):
        decoder = FrameDecoder(max_command_length=4096)
        data = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
        if rng.random() < 0.5:  # make a plausible length prefix so bodies get decoded
            data = struct.pack(">I", 16 + rng.randint(0, 64)) + data
        decoder.feed(data)
        for _ in range(100):
            try:
                if decoder.next_pdu() is None:
                    break
            except FramingError:
                break
            except PduDecodeError:
                continue
