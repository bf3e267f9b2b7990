"""EsmeSession, sans-I/O: a synthetic clock, the SMSC played by hand-built PDUs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.smpp.codec import FrameDecoder, encode_pdu
from gateway.smpp.constants import CommandStatus as S
from gateway.smpp.pdu import (
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    DataSm,
    DataSmResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    QuerySm,
    QuerySmResp,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)
from gateway.smpp.session import (
    MAX_SEQUENCE,
    BindFailed,
    Bound,
    DeliverReceived,
    EsmeSession,
    PeerDead,
    ProtocolError,
    SessionConfig,
    State,
    SubmitResponse,
    SubmitTimeout,
    UnbindReason,
    Unbound,
)

CONFIG = SessionConfig(
    system_id="esme",
    password="secret",
    window_size=3,
    response_timeout=5.0,
    enquire_link_interval=30.0,
    enquire_link_timeout=10.0,
)


def sent(session: EsmeSession) -> list[Pdu]:
    decoder = FrameDecoder()
    decoder.feed(session.data_to_send())
    return list(decoder)


def feed(session: EsmeSession, *pdus: Pdu, now: float = 0.0) -> None:
    session.receive_data(b"".join(encode_pdu(p) for p in pdus), now)


def bound_session(config: SessionConfig = CONFIG, **kwargs: int) -> EsmeSession:
    session = EsmeSession(config, **kwargs)
    session.start(0.0)
    (bind,) = sent(session)
    feed(session, BindTransceiverResp(sequence_number=bind.sequence_number, system_id="SMSC"))
    assert session.events() == [Bound("SMSC")]
    return session


def header(length: int, command_id: int, seq: int) -> bytes:
    return b"".join(n.to_bytes(4, "big") for n in (length, command_id, 0, seq))


def sms(text: str = "hi") -> SubmitSm:
    return SubmitSm(source_addr="123", destination_addr="447700900001", short_message=text.encode())


def test_bind_ok() -> None:
    session = EsmeSession(CONFIG)
    assert session.next_deadline() is None
    session.start(0.0)
    (bind,) = sent(session)
    assert isinstance(bind, BindTransceiver)
    assert (bind.system_id, bind.password, bind.sequence_number) == ("esme", "secret", 1)
    assert session.next_deadline() == 5.0  # the bind's response timeout
    assert session.window_free == 0
    feed(session, BindTransceiverResp(sequence_number=1, system_id="SMSC"), now=0.1)
    assert session.next_event() == Bound("SMSC")
    assert session.next_event() is None
    assert session.state is State.BOUND
    assert session.window_free == 3
    assert session.next_deadline() == 30.1  # enquire_link after 30 s of silence


@pytest.mark.parametrize(
    ("mode", "cls"),
    [("transmitter", BindTransmitter), ("receiver", BindReceiver)],
)
def test_bind_modes(mode: str, cls: type[Pdu]) -> None:
    session = EsmeSession(SessionConfig("a", "b", bind_mode=mode))
    session.start(0.0)
    assert isinstance(sent(session)[0], cls)


@pytest.mark.parametrize("status", [S.ESME_RBINDFAIL, S.ESME_RINVPASWD, S.ESME_RINVSYSID])
def test_bind_failed_keeps_the_status(status: int) -> None:
    session = EsmeSession(CONFIG)
    session.start(0.0)
    sent(session)
    feed(session, BindTransceiverResp(sequence_number=1, command_status=status))
    assert session.events() == [BindFailed(status)]
    assert session.closed
    assert session.next_deadline() is None


def test_bind_generic_nack_and_bind_timeout() -> None:
    session = EsmeSession(CONFIG)
    session.start(0.0)
    feed(session, GenericNack(sequence_number=1, command_status=S.ESME_RINVCMDID))
    assert session.events() == [BindFailed(S.ESME_RINVCMDID)]

    session = EsmeSession(CONFIG)
    session.start(0.0)
    session.handle_timer(4.9)
    assert session.events() == []
    session.handle_timer(5.0)
    assert session.events() == [Unbound(UnbindReason.BIND_TIMEOUT)]


def test_window_fills_and_frees() -> None:
    session = bound_session()
    for ref in "abc":
        assert session.submit(sms(ref), ref, 1.0)
    assert session.window_free == 0
    assert not session.submit(sms("d"), "d", 1.0)  # full: nothing queued
    pdus = sent(session)
    assert [p.sequence_number for p in pdus] == [2, 3, 4]
    assert [p.short_message for p in pdus] == [b"a", b"b", b"c"]
    feed(session, SubmitSmResp(sequence_number=3, message_id="XYZ"), now=1.5)
    assert session.events() == [
        SubmitResponse("b", SubmitSmResp(sequence_number=3, message_id="XYZ"))
    ]
    assert session.window_free == 1
    assert session.submit(sms("d"), "d", 1.6)
    # an error status is reported verbatim, not classified
    throttled = SubmitSmResp(sequence_number=2, command_status=S.ESME_RTHROTTLED)
    nack = GenericNack(sequence_number=4, command_status=S.ESME_RINVCMDLEN)
    feed(session, throttled, nack, now=2.0)
    assert session.events() == [SubmitResponse("a", throttled), SubmitResponse("c", nack)]
    assert (session.sent, session.responses, session.generic_nacks_received) == (4, 3, 1)


def test_response_timeout_frees_the_slot() -> None:
    session = bound_session()
    session.submit(sms(), "a", 1.0)
    session.submit(sms(), "b", 2.0)
    assert session.next_deadline() == 6.0
    session.handle_timer(6.0)
    assert session.events() == [SubmitTimeout("a")]
    assert session.window_free == 2
    assert session.next_deadline() == 7.0
    # a late response is counted, not reported
    feed(session, SubmitSmResp(sequence_number=2, message_id="late"), now=6.5)
    assert session.events() == []
    assert (session.unexpected_responses, session.timeouts) == (1, 1)


def test_enquire_link_cycle_and_dead_peer() -> None:
    session = bound_session()
    sent(session)
    session.handle_timer(29.9)
    assert sent(session) == []
    session.handle_timer(30.0)
    (probe,) = sent(session)
    assert isinstance(probe, EnquireLink)
    assert session.next_deadline() == 40.0
    feed(session, EnquireLinkResp(sequence_number=probe.sequence_number), now=31.0)
    assert session.events() == []
    assert session.next_deadline() == 61.0
    session.handle_timer(61.0)
    (probe,) = sent(session)
    session.submit(sms(), "pending", 66.5)
    session.handle_timer(71.0)
    assert session.events() == [
        PeerDead(),
        Unbound(UnbindReason.PEER_DEAD, ("pending",)),
    ]
    assert session.enquire_links_sent == 2
    assert session.closed


def test_incoming_enquire_link_is_answered() -> None:
    session = bound_session()
    feed(session, EnquireLink(sequence_number=77), now=10.0)
    assert sent(session) == [EnquireLinkResp(sequence_number=77)]
    assert session.enquire_links_received == 1
    assert session.next_deadline() == 40.0  # incoming traffic resets the idle timer


def test_incoming_unbind_reports_outstanding() -> None:
    session = bound_session()
    session.submit(sms(), "x", 1.0)
    sent(session)
    feed(session, Unbind(sequence_number=9), now=2.0)
    assert sent(session) == [UnbindResp(sequence_number=9)]
    assert session.events() == [Unbound(UnbindReason.PEER_UNBIND, ("x",))]
    assert not session.submit(sms(), "y", 3.0)


def test_local_unbind() -> None:
    session = bound_session()
    session.submit(sms(), "x", 1.0)
    sent(session)
    session.unbind(2.0)
    (unbind,) = sent(session)
    assert isinstance(unbind, Unbind)
    assert not session.submit(sms(), "y", 2.0)
    # responses still arrive while unbinding
    feed(session, SubmitSmResp(sequence_number=2, message_id="1"), now=2.1)
    feed(session, UnbindResp(sequence_number=unbind.sequence_number), now=2.2)
    assert [type(e) for e in session.events()] == [SubmitResponse, Unbound]
    assert session.closed

    session = bound_session()
    session.submit(sms(), "x", 2.0)
    session.unbind(1.0)  # not bound yet would close at once; bound: waits for unbind_resp
    session.handle_timer(6.0)
    assert session.events() == [Unbound(UnbindReason.UNBIND_TIMEOUT, ("x",))]


def test_connection_lost_reports_outstanding() -> None:
    session = bound_session()
    session.submit(sms(), "x", 1.0)
    session.connection_lost(1.5)
    assert session.events() == [Unbound(UnbindReason.CONNECTION_LOST, ("x",))]
    session.connection_lost(1.6)
    assert session.events() == []


def test_undecodable_pdus_are_answered_and_the_bind_survives() -> None:
    session = bound_session()
    sent(session)
    unknown = header(16, 0x1234, 5)
    # a known request with an overlong field is answered with its own response and status
    body = b"y" * 70 + b"\0" + encode_pdu(QuerySm())[17:]
    bad_query = header(16 + len(body), QuerySm.command_id, 6) + body
    session.receive_data(unknown + bad_query, 1.0)
    events = session.events()
    assert [type(e) for e in events] == [ProtocolError, ProtocolError]
    assert events[0].error.command_status == S.ESME_RINVCMDID
    assert sent(session) == [
        GenericNack(sequence_number=5, command_status=S.ESME_RINVCMDID),
        QuerySmResp(sequence_number=6, command_status=S.ESME_RINVMSGID),
    ]
    assert (session.protocol_errors, session.generic_nacks_sent) == (2, 1)
    assert session.state is State.BOUND
    assert session.submit(sms(), "still", 2.0)


def test_undecodable_response_is_not_answered() -> None:
    session = bound_session()
    session.submit(sms(), "x", 1.0)
    sent(session)
    frame = encode_pdu(SubmitSmResp(sequence_number=2, message_id="a"))
    frame = frame[:-1] + b"a"  # no NUL: an overlong / unterminated C-Octet string
    session.receive_data(frame, 1.5)
    assert [type(e) for e in session.events()] == [ProtocolError]
    assert sent(session) == []


def test_framing_error_nacks_then_closes() -> None:
    session = bound_session()
    session.submit(sms(), "x", 1.0)
    sent(session)
    session.receive_data((0x7FFFFFFF).to_bytes(4, "big") + bytes(12), 2.0)
    events = session.events()
    assert [type(e) for e in events] == [ProtocolError, Unbound]
    assert events[1] == Unbound(UnbindReason.FRAMING_ERROR, ("x",))
    assert sent(session) == [GenericNack(command_status=S.ESME_RINVCMDLEN)]


def test_deliver_sm_acked_only_on_ack() -> None:
    session = bound_session()
    sent(session)
    receipt = DeliverSm(sequence_number=40, esm_class=4, short_message=b"id:1 stat:DELIVRD")
    mo = DataSm(sequence_number=41, source_addr="447700900123")
    feed(session, receipt, mo, now=1.0)
    assert session.events() == [DeliverReceived(receipt), DeliverReceived(mo)]
    assert sent(session) == []
    assert session.ack(mo)
    assert session.ack(receipt, status=S.ESME_RX_T_APPN)
    assert not session.ack(receipt)  # only once
    assert sent(session) == [
        DataSmResp(sequence_number=41),
        DeliverSmResp(sequence_number=40, command_status=S.ESME_RX_T_APPN),
    ]
    assert (session.delivers_received, session.acks_sent) == (2, 2)


def test_deliver_sm_to_a_transmitter_is_refused() -> None:
    session = EsmeSession(SessionConfig("a", "b", bind_mode="transmitter"))
    session.start(0.0)
    sent(session)
    feed(session, BindTransceiverResp(sequence_number=1))  # the wrong response: ignored
    assert (session.events(), session.unexpected_responses) == ([], 1)
    feed(session, BindTransmitterResp(sequence_number=1))
    assert session.events() == [Bound("")]
    feed(session, DeliverSm(sequence_number=5))
    assert sent(session) == [DeliverSmResp(sequence_number=5, command_status=S.ESME_RINVBNDSTS)]


def test_receiver_cannot_submit() -> None:
    config = SessionConfig("a", "b", bind_mode="receiver")
    session = EsmeSession(config)
    session.start(0.0)
    sent(session)
    feed(session, BindReceiverResp(sequence_number=1))
    assert session.events() == [Bound("")]
    assert session.window_free == 0
    assert not session.submit(sms(), "x", 1.0)


def test_sequence_numbers_wrap() -> None:
    session = bound_session(first_sequence=MAX_SEQUENCE - 1)  # the bind takes MAX - 1
    session.submit(sms(), "a", 1.0)
    session.submit(sms(), "b", 1.0)
    assert [p.sequence_number for p in sent(session)] == [MAX_SEQUENCE, 1]
    # a number still awaiting its response is skipped after the wrap
    session = bound_session(first_sequence=MAX_SEQUENCE)
    session.submit(sms(), "a", 1.0)  # 1
    session._next_seq = 1  # as if 2**31 - 2 numbers had gone by
    session.submit(sms(), "b", 1.0)
    assert [p.sequence_number for p in sent(session)] == [1, 2]


def test_submit_rejects_other_pdus() -> None:
    session = bound_session()
    with pytest.raises(TypeError):
        session.submit(DeliverSm(), "x", 0.0)  # type: ignore[arg-type]


# -- any chunking of the peer's bytes gives the same result ------------------------------------

PEER_SCRIPT = b"".join(
    [
        encode_pdu(SubmitSmResp(sequence_number=2, message_id="m1")),
        encode_pdu(EnquireLink(sequence_number=100)),
        encode_pdu(DeliverSm(sequence_number=101, esm_class=4, short_message=b"id:m1")),
        encode_pdu(GenericNack(sequence_number=3, command_status=S.ESME_RSYSERR)),
        header(16, 0x1234, 103),  # an unknown command
        encode_pdu(SubmitSmResp(sequence_number=4, message_id="m3")),
        encode_pdu(Unbind(sequence_number=104)),
        header(16, 0x1234, 105),  # after the unbind: ignored
    ]
)


def run_script(chunks: list[bytes]) -> tuple[list[object], bytes]:
    session = bound_session()
    for ref in "abc":
        session.submit(sms(ref), ref, 0.0)
    session.data_to_send()
    events: list[object] = []
    out = b""
    for chunk in chunks:
        session.receive_data(chunk, 1.0)
        events += session.events()
        out += session.data_to_send()
    # after the peer's unbind an ack is refused: the SMSC redelivers what it did not get
    assert not any(session.ack(e.pdu) for e in events if isinstance(e, DeliverReceived))
    return events, out


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


EXPECTED = run_script([PEER_SCRIPT])


def test_the_chunking_script() -> None:
    events, out = EXPECTED
    assert [type(e) for e in events] == [
        SubmitResponse,
        DeliverReceived,
        SubmitResponse,
        ProtocolError,
        SubmitResponse,
        Unbound,
    ]
    assert [type(p) for p in _decode(out)] == [
        EnquireLinkResp,
        GenericNack,
        UnbindResp,
    ]


def _decode(data: bytes) -> list[Pdu]:
    decoder = FrameDecoder()
    decoder.feed(data)
    return list(decoder)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    assert run_script(split(PEER_SCRIPT, cuts)) == EXPECTED
