"""The ESME side of one SMPP 3.4 bind, sans-I/O.

Bytes and a monotonic ``now`` go in; events and bytes come out; the caller asks for the next
timer deadline and calls ``handle_timer`` when it passes. Nothing here sleeps, reads a clock
or touches a socket (the asyncio adapter is ``gateway.smpp.esme``).

    session = EsmeSession(SessionConfig(system_id="esme", password="secret"))
    session.start(now)                      # queues the bind
    transport.write(session.data_to_send())
    session.receive_data(chunk, now)
    for event in session.events(): ...      # Bound, SubmitResponse, DeliverReceived, ...

Every started session ends with exactly one terminal event, ``BindFailed`` (the SMSC refused
the bind) or ``Unbound`` (anything else), which lists the refs of submits still unanswered so
that the caller can requeue them: nothing is dropped silently. The session keeps no queue of
its own: ``submit`` returns False when the window is full or the bind is not up.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any

from gateway.smpp.codec import FrameDecoder, encode_pdu
from gateway.smpp.constants import DEFAULT_MAX_COMMAND_LENGTH, RESPONSE_BIT
from gateway.smpp.constants import CommandStatus as S
from gateway.smpp.errors import FramingError, PduDecodeError
from gateway.smpp.pdu import (
    PDU_CLASSES,
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DataSm,
    DeliverSm,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    SubmitMulti,
    SubmitSm,
    Unbind,
    UnbindResp,
    response_class,
)

MAX_SEQUENCE = 0x7FFFFFFF  # SMPP 3.4 section 3.2: sequence numbers run 0x00000001..0x7FFFFFFF

_BIND_CLASSES = {
    "transceiver": BindTransceiver,
    "transmitter": BindTransmitter,
    "receiver": BindReceiver,
}
_SUBMIT_CLASSES = (SubmitSm, DataSm, SubmitMulti)
_DELIVER_CLASSES = (DeliverSm, DataSm)
_ANSWER_WITH_NACK = (S.ESME_RINVCMDLEN, S.ESME_RINVCMDID)


@dataclass(frozen=True, slots=True)
class SessionConfig:
    system_id: str
    password: str
    system_type: str = ""
    bind_mode: str = "transceiver"  # transceiver | transmitter | receiver
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""
    window_size: int = 10  # submits awaiting their response
    response_timeout: float = 10.0  # seconds for any response (bind, submit, unbind)
    enquire_link_interval: float = 30.0  # idle seconds before we probe; 0: never
    enquire_link_timeout: float = 10.0
    max_command_length: int = DEFAULT_MAX_COMMAND_LENGTH

    def __post_init__(self) -> None:
        if self.bind_mode not in _BIND_CLASSES:
            raise ValueError(f"bind_mode must be one of {', '.join(_BIND_CLASSES)}")
        if self.window_size < 1:
            raise ValueError("window_size must be at least 1")
        if self.response_timeout <= 0 or self.enquire_link_timeout <= 0:
            raise ValueError("timeouts must be positive")


# -- events ------------------------------------------------------------------------------------


class UnbindReason(StrEnum):
    LOCAL_UNBIND = "local unbind"  # our unbind was answered
    PEER_UNBIND = "peer unbind"  # the SMSC sent unbind; we answered unbind_resp
    UNBIND_TIMEOUT = "unbind timeout"  # our unbind was not answered in response_timeout
    BIND_TIMEOUT = "bind timeout"
    PEER_DEAD = "peer dead"  # enquire_link not answered in enquire_link_timeout
    FRAMING_ERROR = "framing error"  # command_length out of bounds: the stream is lost
    CONNECTION_LOST = "connection lost"


@dataclass(frozen=True, slots=True)
class Bound:
    system_id: str  # the SMSC's system_id from the bind response


@dataclass(frozen=True, slots=True)
class BindFailed:
    """Terminal: the SMSC answered the bind with an error (ESME_RBINDFAIL, ESME_RINVPASWD,
    ESME_RINVSYSID, ...) or with generic_nack."""

    command_status: int


# not frozen: built per message (docs/ARCHITECTURE.md, "Per-message objects")
@dataclass(slots=True)
class SubmitResponse:
    """The SMSC's answer to ``submit(pdu, ref)``: submit_sm_resp, data_sm_resp,
    submit_multi_resp, or generic_nack; status and message_id are in ``pdu`` verbatim."""

    ref: Any
    pdu: Pdu


@dataclass(frozen=True, slots=True)
class SubmitTimeout:
    """No response in response_timeout; the window slot is free again. The outcome is unknown
    (the SMSC may have accepted it): a late response is counted and otherwise ignored."""

    ref: Any


# not frozen: built per message (docs/ARCHITECTURE.md, "Per-message objects")
@dataclass(slots=True)
class DeliverReceived:
    """deliver_sm or data_sm from the SMSC. Answer it with ``ack(pdu, status)``."""

    pdu: Pdu


@dataclass(frozen=True, slots=True)
class PeerDead:
    """enquire_link went unanswered; followed by Unbound(PEER_DEAD)."""


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """An undecodable PDU from the SMSC (answered as SMPP 3.4 asks; the bind survives unless
    it is a FramingError, which is followed by Unbound(FRAMING_ERROR))."""

    error: PduDecodeError


@dataclass(frozen=True, slots=True)
class Unbound:
    """Terminal: the bind is over; ``outstanding`` are the refs of unanswered submits."""

    reason: UnbindReason
    outstanding: tuple[Any, ...] = ()


Event = (
    Bound
    | BindFailed
    | SubmitResponse
    | SubmitTimeout
    | DeliverReceived
    | PeerDead
    | ProtocolError
    | Unbound
)


class State(Enum):
    IDLE = "idle"  # before start()
    BINDING = "binding"
    BOUND = "bound"
    UNBINDING = "unbinding"
    CLOSED = "closed"


# -- the session -------------------------------------------------------------------------------


_RECEIVING = (State.BOUND, State.UNBINDING)  # deliveries accepted, unless bound as transmitter
# Enum members read per message, as module globals (docs/ARCHITECTURE.md, "Per-message objects")
_IDLE = State.IDLE
_BOUND = State.BOUND
_CLOSED = State.CLOSED


class EsmeSession:
    """The sans-I/O ESME side of one bind. ``now`` is any monotonic clock in seconds and must
    not go backwards."""

    def __init__(self, config: SessionConfig, *, first_sequence: int = 1) -> None:
        if not 1 <= first_sequence <= MAX_SEQUENCE:
            raise ValueError("first_sequence must be in 1..0x7FFFFFFF")
        self.config = config
        # from the (frozen) config, read on every PDU
        self._sends = config.bind_mode != "receiver"
        self._receives = config.bind_mode != "transmitter"
        self.state = State.IDLE
        self.peer_system_id = ""
        self._decoder = FrameDecoder(config.max_command_length)
        self._out = bytearray()
        self._events: deque[Event] = deque()
        self._next_seq = first_sequence
        # seq -> (ref, deadline); insertion order is deadline order (one timeout, monotonic now)
        self._submits: dict[int, tuple[Any, float]] = {}
        self._control: dict[int, tuple[type[Pdu], float]] = {}  # bind / unbind / enquire_link
        self._unacked: set[tuple[int, int]] = set()  # (command_id, seq) of deliveries to ack
        self._last_received = 0.0
        # counters
        self.sent = 0
        self.responses = 0
        self.timeouts = 0
        self.generic_nacks_sent = 0
        self.generic_nacks_received = 0
        self.enquire_links_sent = 0
        self.enquire_links_received = 0
        self.delivers_received = 0
        self.acks_sent = 0
        self.protocol_errors = 0
        self.unexpected_responses = 0

    # -- inputs ----------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Queue the bind request."""
        if self.state is not State.IDLE:
            raise RuntimeError(f"start() in state {self.state.value}")
        cfg = self.config
        bind = _BIND_CLASSES[cfg.bind_mode](
            system_id=cfg.system_id,
            password=cfg.password,
            system_type=cfg.system_type,
            addr_ton=cfg.addr_ton,
            addr_npi=cfg.addr_npi,
            address_range=cfg.address_range,
        )
        self._send_request(bind, now)
        self._last_received = now
        self.state = State.BINDING

    def submit(self, pdu: Pdu, ref: Any, now: float) -> bool:
        """Send submit_sm / data_sm / submit_multi under a fresh sequence number (written into
        ``pdu``). False, with nothing queued, when not bound for sending or the window is full.
        Raises PduEncodeError (nothing queued) for a PDU that cannot be encoded."""
        if not isinstance(pdu, _SUBMIT_CLASSES):
            raise TypeError(f"cannot submit a {type(pdu).__name__}")
        submits = self._submits
        # window_free == 0, without the property call
        if self.state is not _BOUND or not self._sends or len(submits) == self.config.window_size:
            return False
        seq = self._write_request(pdu)
        submits[seq] = (ref, now + self.config.response_timeout)
        self.sent += 1
        return True

    def ack(self, pdu: Pdu, status: int = S.ESME_ROK) -> bool:
        """Answer a delivered deliver_sm / data_sm; False when it is not awaiting an answer
        (already acked, or the bind is closed)."""
        key = (pdu.command_id, pdu.sequence_number)
        if key not in self._unacked or self.state is _CLOSED:
            return False
        self._unacked.discard(key)
        self._out += _ack_octets(pdu.command_id | RESPONSE_BIT, status, pdu.sequence_number)
        self.acks_sent += 1
        return True

    def unbind(self, now: float) -> None:
        """Start a graceful close; Unbound follows when the SMSC answers (or after
        response_timeout). Submits still outstanding may be answered before that."""
        if self.state is State.BOUND:
            self._send_request(Unbind(), now)
            self.state = State.UNBINDING
        elif self.state in (State.IDLE, State.BINDING):
            self._close(UnbindReason.LOCAL_UNBIND)

    def connection_lost(self, now: float) -> None:
        """The transport closed under us."""
        if self.state is not State.CLOSED:
            self._close(UnbindReason.CONNECTION_LOST)

    def receive_data(self, data: bytes, now: float) -> None:
        if self.state is _IDLE or self.state is _CLOSED or not data:
            return
        self._decoder.feed(data)
        next_pdu = self._decoder.next_pdu
        while self.state is not _CLOSED:
            try:
                pdu = next_pdu()
            except FramingError as exc:
                self._protocol_error(exc)
                self._close(UnbindReason.FRAMING_ERROR)
                return
            except PduDecodeError as exc:
                self._last_received = now
                self._protocol_error(exc)
                continue
            if pdu is None:
                return
            self._last_received = now
            if pdu.command_id & RESPONSE_BIT:  # pdu.is_response, without the call
                self._handle_response(pdu)
            else:
                self._handle_request(pdu)

    def handle_timer(self, now: float) -> None:
        """Run whatever is due at ``now`` (calling it early or twice is harmless)."""
        if self.state in (State.IDLE, State.CLOSED):
            return
        while self._submits:
            seq, (ref, deadline) = next(iter(self._submits.items()))
            if deadline > now:
                break
            del self._submits[seq]
            self.timeouts += 1
            self._events.append(SubmitTimeout(ref))
        for seq, (cls, deadline) in list(self._control.items()):
            if deadline > now:
                continue
            del self._control[seq]
            if cls is EnquireLink:
                self._events.append(PeerDead())
                self._close(UnbindReason.PEER_DEAD)
            elif cls is Unbind:
                self._close(UnbindReason.UNBIND_TIMEOUT)
            else:
                self._close(UnbindReason.BIND_TIMEOUT)
            return
        due = self._enquire_due()
        if due is not None and due <= now:
            self._send_request(EnquireLink(), now, self.config.enquire_link_timeout)
            self.enquire_links_sent += 1

    # -- outputs ---------------------------------------------------------------------------

    @property
    def has_output(self) -> bool:
        return bool(self._out)

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    @property
    def event_queue(self) -> deque[Event]:
        """The pending events, oldest first, as the session's own queue (the same object for the
        session's life): ``popleft()`` on it is ``next_event()`` without a call per event.
        Events appended while it is being drained (from an ``unbind`` inside an event handler,
        say) come out of the same queue."""
        return self._events

    def events(self) -> list[Event]:
        """All pending events, oldest first."""
        events = list(self._events)
        self._events.clear()
        return events

    def next_deadline(self) -> float | None:
        """The earliest of the control requests' deadlines, the oldest submit's and the next
        enquire_link's (on a tie, the first of them in that order)."""
        if self.state is _IDLE or self.state is _CLOSED:
            return None
        deadline = None
        if self._control:  # usually empty once bound
            for _, due in self._control.values():
                if deadline is None or due < deadline:
                    deadline = due
        if self._submits:
            due = next(iter(self._submits.values()))[1]
            if deadline is None or due < deadline:
                deadline = due
        due = self._enquire_due()
        if due is not None and (deadline is None or due < deadline):
            deadline = due
        return deadline

    @property
    def window_free(self) -> int:
        """Submits that may be sent now: 0 unless bound as transmitter or transceiver."""
        if self.state is not _BOUND or not self._sends:
            return 0
        return self.config.window_size - len(self._submits)

    @property
    def in_flight(self) -> int:
        return len(self._submits)

    @property
    def closed(self) -> bool:
        return self.state is _CLOSED

    # -- internals -------------------------------------------------------------------------

    def _write_request(self, pdu: Pdu) -> int:
        """Queue a request under the next free sequence number; returns the number."""
        seq = self._next_seq
        # Skip numbers still awaiting a response (only possible after a full wrap).
        while seq in self._submits or seq in self._control:
            seq = seq % MAX_SEQUENCE + 1
        self._next_seq = seq % MAX_SEQUENCE + 1
        pdu.sequence_number = seq
        try:
            self._out += encode_pdu(pdu)
        except Exception:
            self._next_seq = seq  # nothing was sent: reuse the number
            raise
        return seq

    def _send_request(self, pdu: Pdu, now: float, timeout: float | None = None) -> int:
        """A bind, unbind or enquire_link: queued and awaiting its response in _control."""
        seq = self._write_request(pdu)
        deadline = now + (self.config.response_timeout if timeout is None else timeout)
        self._control[seq] = (type(pdu), deadline)
        return seq

    def _write(self, pdu: Pdu) -> None:
        self._out += encode_pdu(pdu)

    def _enquire_due(self) -> float | None:
        interval = self.config.enquire_link_interval
        if self.state is not _BOUND or interval <= 0:
            return None
        # _control is empty unless an enquire_link (or our unbind) awaits its response
        if self._control and any(cls is EnquireLink for cls, _ in self._control.values()):
            return None
        return self._last_received + interval

    def _handle_response(self, pdu: Pdu) -> None:
        seq = pdu.sequence_number
        if isinstance(pdu, GenericNack):
            self.generic_nacks_received += 1
        submit = self._submits.pop(seq, None)
        if submit is not None:
            self.responses += 1
            self._events.append(SubmitResponse(submit[0], pdu))
            return
        cls = self._control.get(seq, (None, 0.0))[0]
        if cls is None or not (
            isinstance(pdu, GenericNack) or pdu.command_id == cls.command_id | RESPONSE_BIT
        ):
            self.unexpected_responses += 1
            return
        del self._control[seq]
        if cls is EnquireLink:
            return  # any answer, even generic_nack, shows the peer is alive
        if cls is Unbind:
            self._close(UnbindReason.LOCAL_UNBIND)
        elif pdu.command_status != S.ESME_ROK:
            self._events.append(BindFailed(pdu.command_status))
            self.state = State.CLOSED
            self._control.clear()
        elif self.state is State.BINDING:
            self.state = State.BOUND
            self.peer_system_id = getattr(pdu, "system_id", "")
            self._events.append(Bound(self.peer_system_id))

    def _handle_request(self, pdu: Pdu) -> None:
        # The branches exclude each other; the commonest comes first.
        if isinstance(pdu, _DELIVER_CLASSES) and self._receives and self.state in _RECEIVING:
            self.delivers_received += 1
            self._unacked.add((pdu.command_id, pdu.sequence_number))
            self._events.append(DeliverReceived(pdu))
        elif isinstance(pdu, EnquireLink):
            self.enquire_links_received += 1
            self._write(EnquireLinkResp(sequence_number=pdu.sequence_number))
        elif isinstance(pdu, Unbind):
            self._write(UnbindResp(sequence_number=pdu.sequence_number))
            self._close(UnbindReason.PEER_UNBIND)
        else:
            # Outbind and alert_notification have no response; anything else is not valid
            # from an SMSC in this bind state (SMPP 3.4 section 2.3).
            resp_cls = response_class(type(pdu))
            if resp_cls is not None:
                self._write(
                    resp_cls(command_status=S.ESME_RINVBNDSTS, sequence_number=pdu.sequence_number)
                )

    def _protocol_error(self, exc: PduDecodeError) -> None:
        self.protocol_errors += 1
        self._events.append(ProtocolError(exc))
        if exc.command_id & RESPONSE_BIT and not isinstance(exc, FramingError):
            return  # never answer a response; its request will time out if it was ours
        cls = PDU_CLASSES.get(exc.command_id)
        resp_cls = response_class(cls) if cls is not None else None
        seq = exc.sequence_number
        if (
            resp_cls is None
            or exc.command_status in _ANSWER_WITH_NACK
            or isinstance(exc, FramingError)
        ):
            self._write(GenericNack(command_status=exc.command_status, sequence_number=seq))
            self.generic_nacks_sent += 1
        else:
            self._write(resp_cls(command_status=exc.command_status, sequence_number=seq))

    def _close(self, reason: UnbindReason) -> None:
        outstanding = tuple(ref for ref, _ in self._submits.values())
        self._submits.clear()
        self._control.clear()
        self._unacked.clear()
        self.state = State.CLOSED
        self._events.append(Unbound(reason, outstanding))


_HEADER = struct.Struct(">IIII")


def _ack_octets(command_id: int, status: int, sequence_number: int) -> bytes:
    """deliver_sm_resp / data_sm_resp as `encode_pdu` writes them (header and an empty
    message_id, no TLVs): the ack of every receipt, so built without a PDU object."""
    return _HEADER.pack(17, command_id, status, sequence_number) + b"\x00"
