"""The per-PDU shortcuts of EsmeSession and EsmeConnection hold to the plain definitions:
next_deadline is the min() of every pending deadline, window_free and the enquire_link timer
are what their definitions say, and the adapter's pump delivers events exactly as a
next_event() loop does (re-entrant unbind, a raising handler, timer arming)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.smpp.codec import encode_pdu
from gateway.smpp.constants import CommandStatus as S
from gateway.smpp.esme import EsmeConnection
from gateway.smpp.pdu import (
    BindReceiverResp,
    BindTransceiverResp,
    BindTransmitterResp,
    DataSmResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Outbind,
    QuerySm,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)
from gateway.smpp.session import (
    Bound,
    DeliverReceived,
    EsmeSession,
    Event,
    SessionConfig,
    State,
    SubmitResponse,
    UnbindReason,
    Unbound,
)

# -- the session against its definitions -------------------------------------------------------


def reference_enquire_due(session: EsmeSession) -> float | None:
    interval = session.config.enquire_link_interval
    if session.state is not State.BOUND or interval <= 0:
        return None
    if any(cls is EnquireLink for cls, _ in session._control.values()):
        return None
    return session._last_received + interval


def reference_deadline(session: EsmeSession) -> float | None:
    if session.state in (State.IDLE, State.CLOSED):
        return None
    deadlines = [deadline for _, deadline in session._control.values()]
    if session._submits:
        deadlines.append(next(iter(session._submits.values()))[1])
    due = reference_enquire_due(session)
    if due is not None:
        deadlines.append(due)
    return min(deadlines, default=None)


def reference_window_free(session: EsmeSession) -> int:
    if session.state is not State.BOUND or session.config.bind_mode == "receiver":
        return 0
    return session.config.window_size - len(session._submits)


RESPONSES = [
    SubmitSmResp,
    GenericNack,
    BindTransceiverResp,
    BindTransmitterResp,
    BindReceiverResp,
    EnquireLinkResp,
    UnbindResp,
]
REQUESTS = [EnquireLink, Unbind, QuerySm, Outbind]


def random_step(session: EsmeSession, rnd: random.Random, now: float) -> float:
    """One random input: a submit, the peer's PDUs, time passing, an ack, an unbind."""
    op = rnd.random()
    if op < 0.25:
        session.submit(SubmitSm(short_message=b"x"), rnd.random(), now)
    elif op < 0.55:
        seq = rnd.choice([*session._submits, *session._control, rnd.randint(1, 50)])
        status = rnd.choice([S.ESME_ROK, S.ESME_ROK, S.ESME_RTHROTTLED])
        pdus = [rnd.choice(RESPONSES)(sequence_number=seq, command_status=status)]
        if rnd.random() < 0.5:
            pdus.append(DeliverSm(sequence_number=rnd.randint(1, 999), short_message=b"id:1"))
        if rnd.random() < 0.1:
            pdus.append(rnd.choice(REQUESTS)(sequence_number=rnd.randint(1, 9)))
        session.receive_data(b"".join(encode_pdu(p) for p in pdus), now)
    elif op < 0.7:
        now += rnd.choice([0.0, 0.5, 1.0, 2.5, 10.0])
        session.handle_timer(now)
    elif op < 0.8:
        delivered = [e for e in session.event_queue if isinstance(e, DeliverReceived)]
        if delivered:
            session.ack(rnd.choice(delivered).pdu)
    elif op < 0.83:
        session.unbind(now)
    elif op < 0.85:
        session.connection_lost(now)
    else:
        now += rnd.random()
    if rnd.random() < 0.5:
        session.events()
    session.data_to_send()
    return now


@settings(max_examples=400, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    mode=st.sampled_from(["transceiver", "transmitter", "receiver"]),
    interval=st.sampled_from([0.0, 2.0, 30.0]),
    window=st.sampled_from([1, 3]),
)
def test_deadline_window_and_enquire_timer_follow_their_definitions(
    seed: int, mode: str, interval: float, window: int
) -> None:
    config = SessionConfig(
        system_id="esme",
        password="pw",
        bind_mode=mode,
        window_size=window,
        response_timeout=5.0,
        enquire_link_interval=interval,
        enquire_link_timeout=1.0,
    )
    session = EsmeSession(config)
    rnd = random.Random(seed)
    now = 0.0
    session.start(now)
    for _ in range(40):
        now = random_step(session, rnd, now)
        assert session.next_deadline() == reference_deadline(session)
        assert session.window_free == reference_window_free(session)
        assert session._enquire_due() == reference_enquire_due(session)


def test_ties_keep_the_first_deadline() -> None:
    config = SessionConfig("esme", "pw", response_timeout=5.0, enquire_link_interval=5)
    session = EsmeSession(config)
    session.start(0)
    session.receive_data(encode_pdu(BindTransceiverResp(sequence_number=1)), 0)
    session.submit(SubmitSm(), "a", 0)
    deadline = session.next_deadline()
    assert deadline == 5 and type(deadline) is float  # the submit's 0 + 5.0, before the int 5


# -- the adapter's pump ------------------------------------------------------------------------


class FakeLoop:
    def __init__(self) -> None:
        self.now = 100.0
        self.soon: list[Any] = []
        self.armed: list[float] = []

    def time(self) -> float:
        return self.now

    def call_soon(self, callback: Any) -> None:
        self.soon.append(callback)

    def call_at(self, when: float, callback: Any) -> asyncio.TimerHandle:
        self.armed.append(when)
        return asyncio.TimerHandle(when, callback, (), asyncio.get_running_loop())


class FakeTransport:
    def __init__(self) -> None:
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


async def connected(on_event: Any) -> tuple[EsmeConnection, FakeLoop]:
    config = SessionConfig("esme", "pw", response_timeout=5.0, enquire_link_interval=30.0)
    conn = EsmeConnection(config, on_event)
    loop = FakeLoop()
    conn._loop = loop  # type: ignore[assignment]
    conn.connection_made(FakeTransport())  # type: ignore[arg-type]
    return conn, loop


def deliveries(*seqs: int) -> bytes:
    return b"".join(
        encode_pdu(DeliverSm(sequence_number=seq, short_message=b"id:%d" % seq)) for seq in seqs
    )


def test_pump_delivers_in_order_with_a_reentrant_unbind() -> None:
    async def scenario() -> list[Any]:
        seen: list[Any] = []

        def on_event(event: Event) -> None:
            seen.append(event)
            if isinstance(event, DeliverReceived) and event.pdu.sequence_number == 11:
                conn.session.connection_lost(loop.now)  # appends Unbound mid-drain
                conn.ack(event.pdu)  # refused: the bind is closed

        conn, loop = await connected(on_event)
        conn.data_received(encode_pdu(BindTransceiverResp(sequence_number=1)) + deliveries(10, 11))
        return seen

    events = asyncio.run(scenario())
    assert [type(e) for e in events] == [Bound, DeliverReceived, DeliverReceived, Unbound]
    assert events[-1] == Unbound(UnbindReason.CONNECTION_LOST)


def test_events_after_a_raising_handler_wait_for_the_next_pump() -> None:
    async def scenario() -> None:
        seen: list[int] = []

        def on_event(event: Event) -> None:
            if isinstance(event, DeliverReceived):
                seen.append(event.pdu.sequence_number)
                if event.pdu.sequence_number == 10 and seen.count(10) == 1:
                    raise RuntimeError("handler failed")

        conn, _loop = await connected(on_event)
        conn.data_received(encode_pdu(BindTransceiverResp(sequence_number=1)))
        with pytest.raises(RuntimeError):
            conn.data_received(deliveries(10, 11, 12))
        assert seen == [10] and len(conn.session.event_queue) == 2
        conn.data_received(deliveries(13))
        assert seen == [10, 11, 12, 13]

    asyncio.run(scenario())


def test_timer_is_armed_only_for_an_earlier_deadline() -> None:
    async def scenario() -> None:
        responses: list[Any] = []
        conn, loop = await connected(responses.append)
        assert loop.armed == [105.0]  # the bind's response timeout
        conn.data_received(encode_pdu(BindTransceiverResp(sequence_number=1)))
        loop.now = 101.0
        assert conn.submit(SubmitSm(), "a")  # due at 106: the timer at 105 stays
        assert loop.armed == [105.0]
        conn._on_timer()  # fires (early for the submit): re-armed for the submit's deadline
        assert loop.armed == [105.0, 106.0]
        conn.data_received(encode_pdu(SubmitSmResp(sequence_number=2)))
        assert isinstance(responses[-1], SubmitResponse)
        assert loop.armed == [105.0, 106.0]  # the enquire_link at 131 is later: unchanged
        assert len(loop.soon) == 1  # one flush scheduled for all of it

    asyncio.run(scenario())


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([DeliverSmResp, DataSmResp]),
    st.integers(0, 0xFFFFFFFF),
    st.integers(1, 0x7FFFFFFF),
)
def test_acks_are_the_octets_the_codec_writes(resp_cls: type, status: int, seq: int) -> None:
    from gateway.smpp.session import _ack_octets

    resp = resp_cls(command_status=status, sequence_number=seq)
    assert _ack_octets(resp.command_id, status, seq) == encode_pdu(resp)
