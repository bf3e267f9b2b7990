"""The dispatcher's bookkeeping under any order of operations: the queued count it keeps
(read on every sms.send for the queue limit) equals the parts it really holds, and a message's
parts still go in part order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.carriers.dispatch import Dispatcher
from gateway.carriers.outbound import OutboundPart
from gateway.smpp.pdu import SubmitSm

OPS = st.lists(
    st.tuples(
        st.sampled_from(["enqueue", "take", "done", "requeue", "fail", "drain"]),
        st.integers(min_value=1, max_value=4),
    ),
    max_size=80,
)


def _parts(message_id: str, count: int) -> list[OutboundPart]:
    return [OutboundPart(message_id, n, SubmitSm()) for n in range(1, count + 1)]


def _held(d: Dispatcher) -> int:
    return sum(len(q) for q in d._parts.values())


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_queued_count_matches_the_parts_held(ops: list[tuple[str, int]]) -> None:
    d = Dispatcher(1e9, 0.0)
    in_flight: list[OutboundPart] = []
    sent: dict[str, list[int]] = {}
    created = 0
    for op, n in ops:
        if op == "enqueue":
            created += 1
            d.enqueue(_parts(f"m{created:03d}", n))
        elif op == "take":
            for _ in range(n):
                part = d.take("bind", 0.0)
                if part is None:
                    break
                in_flight.append(part)
        elif in_flight and op == "done":
            part = in_flight.pop(0)
            sent.setdefault(part.message_id, []).append(part.part_no)
            d.done(part)
        elif in_flight and op == "requeue":
            d.requeue(in_flight.pop(0))
        elif in_flight and op == "fail":
            part = in_flight.pop(0)
            d.done(part)
            d.drop_message(part.message_id)
        elif op == "drain":
            d.drain()
        assert len(d) == _held(d)
        assert d.in_flight == len(in_flight)
    for part_nos in sent.values():
        assert part_nos == sorted(part_nos)


def test_take_untouched_leaves_every_message_that_has_gone_out_in_part() -> None:
    from gateway.carriers.outbound import OutboundPart

    def parts(message_id: str, count: int) -> list[OutboundPart]:
        return [OutboundPart(message_id, n, None) for n in range(1, count + 1)]  # type: ignore[arg-type]

    d = Dispatcher(1000, 0.0)  # not sticky: only what went out keeps a message here
    d.enqueue(parts("started", 2))
    assert d.take("bind", 0.0).part_no == 1  # part 1 in flight
    d.enqueue(parts("retried", 1))
    retried = d.take("other", 0.0)
    assert retried is not None and retried.message_id == "retried"
    retried.attempts = 1
    d.requeue(retried)  # it went out once: the carrier may have it
    d.enqueue(parts("fresh", 2))
    d.enqueue(parts("alone", 1))
    taken = d.take_untouched()
    assert [[(p.message_id, p.part_no) for p in m] for m in taken] == [
        [("fresh", 1), ("fresh", 2)],
        [("alone", 1)],
    ]
    assert len(d) == 2  # started's part 2 and retried's part 1 stay
