import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.smpp.reassembly import (
    ConcatInfo,
    ExpiredMessage,
    ExpiryReason,
    Reassembler,
    ReassemblyError,
    UdhError,
    parse_udh,
)

KEY = ("447700900001", "447700900002")


def test_parse_udh_8_bit_reference():
    assert parse_udh(bytes.fromhex("050003ab0302") + b"hi") == (ConcatInfo(0xAB, 3, 2, 8), b"hi")


def test_parse_udh_16_bit_reference():
    info, payload = parse_udh(bytes.fromhex("06080412340201") + b"x")
    assert (info, payload) == (ConcatInfo(0x1234, 2, 1, 16), b"x")


def test_parse_udh_skips_other_elements():
    # Application port addressing (IEI 0x05) before the concatenation element.
    udh = bytes.fromhex("0b05040b8423f00003010201")
    assert parse_udh(udh + b"body") == (ConcatInfo(1, 2, 1, 8), b"body")


def test_parse_udh_without_concatenation():
    assert parse_udh(bytes.fromhex("0401020304") + b"x") == (None, b"x")
    assert parse_udh(b"\x00x") == (None, b"x")


@pytest.mark.parametrize("element", ["0003010001", "0003010100", "0003010203"])
def test_invalid_concatenation_values_are_ignored(element):
    udh = bytes.fromhex("05" + element)
    assert parse_udh(udh + b"x") == (None, b"x")


def test_last_valid_concatenation_element_counts():
    # 8-bit element, then a valid 16-bit one, then an 8-bit one with total 0 (ignored).
    udh = bytes.fromhex("1000030102010804000903020003010000")
    assert parse_udh(udh + b"x") == (ConcatInfo(9, 3, 2, 16), b"x")


@pytest.mark.parametrize(
    "data",
    [
        "",  # no header length
        "05000301",  # header longer than the message
        "0300050a",  # element longer than the header
        "0100",  # element header cut short
        "0400020102",  # 8-bit concatenation element of length 2
        "050803010201",  # 16-bit concatenation element of length 3
    ],
)
def test_malformed_udh(data):
    with pytest.raises(UdhError):
        parse_udh(bytes.fromhex(data))


def test_out_of_order_parts_join_in_sequence_order():
    r = Reassembler(timeout=60, max_pending=10)
    assert r.add(KEY, 7, 3, 3, b"c", now=0) is None
    assert r.add(KEY, 7, 3, 1, b"a", now=1) is None
    assert len(r) == 1
    assert r.add(KEY, 7, 3, 2, b"b", now=2) == b"abc"
    assert len(r) == 0
    assert r.completed == 1
    assert r.next_deadline() is None


def test_single_part_completes_at_once():
    r = Reassembler(timeout=60, max_pending=10)
    assert r.add(KEY, 7, 1, 1, b"whole", now=0) == b"whole"
    assert r.completed == 1
    assert len(r) == 0


def test_messages_are_kept_apart_by_key_and_reference():
    r = Reassembler(timeout=60, max_pending=10)
    r.add(KEY, 1, 2, 1, b"a1", now=0)
    r.add(KEY, 2, 2, 1, b"b1", now=0)
    r.add(("other", "sender"), 1, 2, 1, b"c1", now=0)
    assert r.add(KEY, 2, 2, 2, b"b2", now=0) == b"b1b2"
    assert r.add(("other", "sender"), 1, 2, 2, b"c2", now=0) == b"c1c2"
    assert r.add(KEY, 1, 2, 2, b"a2", now=0) == b"a1a2"


def test_duplicates_are_ignored_and_counted():
    r = Reassembler(timeout=60, max_pending=10)
    r.add(KEY, 7, 2, 1, b"first", now=0)
    assert r.add(KEY, 7, 2, 1, b"again", now=1) is None
    assert r.duplicates == 1
    assert r.add(KEY, 7, 2, 2, b"-second", now=2) == b"first-second"


def test_timeout_reports_the_missing_parts():
    r = Reassembler(timeout=30, max_pending=10)
    r.add(KEY, 7, 3, 2, b"b", now=100)
    r.add(KEY, 8, 2, 1, b"x", now=110)
    assert r.next_deadline() == 130
    assert r.expire(now=129.9) == []
    assert r.expire(now=130) == [ExpiredMessage(KEY, 7, 3, {2: b"b"}, (1, 3), ExpiryReason.TIMEOUT)]
    assert r.next_deadline() == 140
    assert r.expired == 1
    assert len(r) == 1


def test_deadline_counts_from_the_first_part():
    r = Reassembler(timeout=30, max_pending=10)
    r.add(KEY, 7, 3, 1, b"a", now=0)
    r.add(KEY, 7, 3, 2, b"b", now=29)
    assert [m.missing for m in r.expire(now=30)] == [(3,)]


def test_eviction_of_the_oldest_when_full():
    r = Reassembler(timeout=30, max_pending=2)
    r.add(KEY, 1, 2, 1, b"a", now=0)
    r.add(KEY, 2, 2, 1, b"b", now=1)
    r.add(KEY, 2, 2, 1, b"b", now=1)  # a part of a pending message evicts nothing
    assert r.evicted == 0
    r.add(KEY, 3, 2, 1, b"c", now=2)
    assert r.evicted == 1
    assert len(r) == 2
    assert r.next_deadline() == 2  # the eviction is due for reporting now
    assert r.expire(now=2) == [ExpiredMessage(KEY, 1, 2, {1: b"a"}, (2,), ExpiryReason.EVICTED)]
    assert r.next_deadline() == 31
    assert r.add(KEY, 3, 2, 2, b"C", now=3) == b"cC"


def test_a_different_total_supersedes_the_pending_message():
    r = Reassembler(timeout=30, max_pending=10)
    r.add(KEY, 5, 3, 1, b"old", now=0)
    assert r.add(KEY, 5, 2, 1, b"new", now=1) is None
    assert r.superseded == 1
    assert r.add(KEY, 5, 2, 2, b"!", now=2) == b"new!"
    [report] = r.expire(now=2)
    assert (report.parts, report.missing, report.reason) == (
        {1: b"old"},
        (2, 3),
        ExpiryReason.SUPERSEDED,
    )


@pytest.mark.parametrize(("total", "seq"), [(0, 0), (2, 0), (2, 3), (256, 1)])
def test_invalid_part_numbers(total, seq):
    with pytest.raises(ReassemblyError):
        Reassembler(timeout=30, max_pending=10).add(KEY, 1, total, seq, b"", now=0)


def test_invalid_configuration():
    with pytest.raises(ValueError):
        Reassembler(timeout=0, max_pending=1)
    with pytest.raises(ValueError):
        Reassembler(timeout=1, max_pending=0)


@given(st.lists(st.binary(max_size=5), min_size=2, max_size=20), st.randoms())
def test_any_arrival_order_with_duplicates(parts, random):
    r = Reassembler(timeout=30, max_pending=4)
    arrivals = [*enumerate(parts, start=1), (1, parts[0])]
    random.shuffle(arrivals)
    results = [r.add(KEY, 1, len(parts), seq, payload, now=0) for seq, payload in arrivals]
    completed = [result for result in results if result is not None]
    assert completed == [b"".join(parts)]
    # The duplicate either arrived before completion or started a new pending message.
    assert r.duplicates + len(r) == 1
