"""The SMSC's protocol logic without I/O.

The I/O adapter opens a connection id per accepted socket, feeds it bytes with the current
(monotonic) time, and carries out the returned actions: ``Send`` a PDU no earlier than ``at``
(then close if ``close_after``), or ``Close`` (``abort``: at once, discarding unsent data).
After every event it calls ``poll(now)`` and arms one timer for ``next_deadline()``.

Everything random (drops, receipt fates, latency jitter) comes from RNGs seeded from
``config.seed``, one per concern, so enabling one fault does not change another's sequence.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from gateway.routing.token_bucket import TokenBucket
from gateway.smpp.codec import FrameDecoder
from gateway.smpp.constants import CommandId, Tag
from gateway.smpp.constants import CommandStatus as S
from gateway.smpp.errors import FramingError, PduDecodeError
from gateway.smpp.pdu import (
    PDU_CLASSES,
    CancelSm,
    CancelSmResp,
    DataSm,
    DataSmResp,
    DeliverSm,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    QuerySm,
    QuerySmResp,
    ReplaceSm,
    ReplaceSmResp,
    SmeDest,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    UnsuccessSme,
    response_class,
)
from gateway.smpp.text import DEFAULT_ALLOWED

from .config import Account, SimConfig, check_config
from .counters import Counters
from .ids import MessageIdGenerator
from .messages import build_mo, build_receipt, message_preview
from .outbound import MO, RECEIPT, Delivery, DeliveryQueue

MESSAGE_MEMORY = 100_000  # messages remembered for query_sm / cancel_sm / replace_sm
BIND_MEMORY = 1000  # accepted binds remembered for inspection (the latest)
_MAX_SEQUENCE = 0x7FFFFFFF


class BindMode(StrEnum):
    TRANSMITTER = "transmitter"
    RECEIVER = "receiver"
    TRANSCEIVER = "transceiver"


_BIND_MODES = {
    CommandId.BIND_TRANSMITTER: BindMode.TRANSMITTER,
    CommandId.BIND_RECEIVER: BindMode.RECEIVER,
    CommandId.BIND_TRANSCEIVER: BindMode.TRANSCEIVER,
}
_CAN_SUBMIT = (BindMode.TRANSMITTER, BindMode.TRANSCEIVER)
_CAN_RECEIVE = (BindMode.RECEIVER, BindMode.TRANSCEIVER)


@dataclass(slots=True)
class Send:
    conn_id: int
    pdu: Pdu
    at: float
    close_after: bool = False


@dataclass(slots=True)
class Close:
    conn_id: int
    abort: bool = False


Action = Send | Close
Address = tuple[int, int, str]  # ton, npi, address
Peer = tuple[str, int]  # the ESME's host and port, as the adapter saw them


@dataclass(frozen=True, slots=True)
class BindRecord:
    """An accepted bind: its connection, account and mode, and where it came from (``peer``
    is None when the adapter did not say)."""

    conn_id: int
    system_id: str
    mode: BindMode
    peer: Peer | None


@dataclass(slots=True, eq=False)
class _Connection:
    conn_id: int
    decoder: FrameDecoder
    peer: Peer | None = None
    mode: BindMode | None = None
    system_id: str = ""
    closing: bool = False
    unbinding: bool = False  # we sent unbind and wait for unbind_resp
    last_send_at: float = 0.0
    sequence: int = 0
    outstanding: dict[int, tuple[Delivery, float]] = field(default_factory=dict)

    def next_sequence(self) -> int:
        self.sequence = self.sequence % _MAX_SEQUENCE + 1
        return self.sequence


@dataclass(slots=True, eq=False)
class _Message:
    """What query_sm, cancel_sm and replace_sm need to know about an accepted message."""

    message_id: str
    system_id: str
    service_type: str
    source_addr: str
    destination_addr: str
    final_at: float  # monotonic time of its final state
    final_wall: float
    delivered: bool
    error: int
    receipts: list[Delivery] = field(default_factory=list)
    cancelled_wall: float | None = None


def smpp_time(wall: float) -> str:
    """An SMPP absolute time (YYMMDDhhmmsstnnp) in UTC."""
    return time.strftime("%y%m%d%H%M%S", time.gmtime(wall)) + "000+"


class SmscCore:
    def __init__(
        self, config: SimConfig, now: float, wall_clock: Callable[[], float] = time.time
    ) -> None:
        check_config(config)
        self.config = config
        self.seed = (
            config.seed if config.seed is not None else random.SystemRandom().randrange(2**32)
        )
        self.counters = Counters()
        self.submitted: deque[Pdu] = deque(maxlen=config.keep_submitted)
        self.binds: deque[BindRecord] = deque(maxlen=BIND_MEMORY)
        self._wall = wall_clock
        self._drop_rng = random.Random(f"{self.seed}:drop")
        self._fate_rng = random.Random(f"{self.seed}:fate")
        self._latency_rng = random.Random(f"{self.seed}:latency")
        self._ids = MessageIdGenerator(
            config.id_format, config.id_start, config.id_width, config.id_uppercase
        )
        self._queue = DeliveryQueue(config.receipt_queue_limit)
        self._connections: dict[int, _Connection] = {}
        self._receivers: dict[str, list[int]] = defaultdict(list)
        self._round_robin: dict[str, int] = defaultdict(int)
        self._buckets: dict[str, TokenBucket] = {}
        self._messages: OrderedDict[str, _Message] = OrderedDict()
        self._conn_ids = itertools.count(1)
        self._mo_references = itertools.count(random.Random(f"{self.seed}:mo").randrange(256))
        interval = config.enquire_link_interval
        self._next_enquire = now + interval if interval else None
        self._next_mo = now + config.mo_interval if config.mo_interval else None
        self._next_expiry: float | None = None
        self._handlers: dict[int, Callable[..., list[Action]]] = {
            CommandId.SUBMIT_SM: self._on_submit_sm,
            CommandId.DATA_SM: self._on_data_sm,
            CommandId.SUBMIT_MULTI: self._on_submit_multi,
            CommandId.QUERY_SM: self._on_query_sm,
            CommandId.CANCEL_SM: self._on_cancel_sm,
            CommandId.REPLACE_SM: self._on_replace_sm,
        }

    # -- events from the adapter -------------------------------------------------------------

    def open(self, now: float, peer: Peer | None = None) -> int:
        """A new connection; ``peer`` is the ESME's (host, port), recorded with its binds."""
        conn_id = next(self._conn_ids)
        self._connections[conn_id] = _Connection(
            conn_id, FrameDecoder(self.config.max_command_length), peer, last_send_at=now
        )
        self.counters.connections_opened += 1
        return conn_id

    def receive(self, conn_id: int, data: bytes, now: float) -> list[Action]:
        conn = self._connections.get(conn_id)
        if conn is None or conn.closing:
            return []
        conn.decoder.feed(data)
        actions: list[Action] = []
        while not conn.closing:
            try:
                pdu = conn.decoder.next_pdu()
            except FramingError as exc:
                self.counters.framing_errors += 1
                actions.append(self._generic_nack(conn, exc.command_status, exc, now, close=True))
                break
            except PduDecodeError as exc:
                self.counters.decode_errors += 1
                actions.append(self._answer_undecodable(conn, exc, now))
                continue
            if pdu is None:
                break
            if self.config.drop_ratio and self._drop_rng.random() < self.config.drop_ratio:
                self.counters.drops += 1
                conn.closing = True
                actions.append(Close(conn_id, abort=True))
                break
            actions.extend(self._dispatch(conn, pdu, now))
        return actions

    def lost(self, conn_id: int, now: float) -> None:
        """The connection is gone (either side closed it)."""
        conn = self._connections.pop(conn_id, None)
        if conn is None:
            return
        self.counters.connections_closed += 1
        self._unregister_receiver(conn)
        for delivery, _ in reversed(conn.outstanding.values()):
            self._queue.requeue(delivery)
            self.counters.deliver_sm_requeued += 1
        conn.outstanding.clear()

    def poll(self, now: float) -> list[Action]:
        """Whatever is due by now: deliveries, enquire_links, periodic MO, expired windows."""
        actions: list[Action] = []
        if self._next_expiry is not None and now >= self._next_expiry:
            self._expire_outstanding(now)
        if self._next_enquire is not None and now >= self._next_enquire:
            self._next_enquire = now + self.config.enquire_link_interval
            for conn in self._connections.values():
                if conn.mode is not None and not conn.closing:
                    self.counters.enquire_links_sent += 1
                    enquire = EnquireLink(sequence_number=conn.next_sequence())
                    actions.append(Send(conn.conn_id, enquire, now))
        if self._next_mo is not None and now >= self._next_mo:
            self._next_mo = now + self.config.mo_interval
            config = self.config
            self.inject_mo(
                config.mo_text,
                now,
                system_id=config.mo_system_id or None,
                source_addr=config.mo_source_addr,
                destination_addr=config.mo_destination_addr,
                segmentation=config.mo_segmentation,
            )
        self._queue.release(now)
        self._drain(now, actions)
        return actions

    def next_deadline(self) -> float | None:
        times = [
            t
            for t in (self._queue.next_due(), self._next_enquire, self._next_mo, self._next_expiry)
            if t is not None
        ]
        return min(times, default=None)

    def inject_mo(
        self,
        text: str,
        now: float,
        *,
        system_id: str | None = None,
        source_addr: str = "447700900123",
        destination_addr: str = "12345",
        segmentation: str = "udh8",
        encodings: Sequence[int] = DEFAULT_ALLOWED,
    ) -> list[DeliverSm]:
        """Queue an MO message (all its parts) for system_id, or for every account if None.

        Returns the deliver_sm PDUs of one copy (sequence numbers are set when sent). They go
        out on the next poll() if a receiver bind has window room, else wait in the queue.
        """
        if system_id is not None and self.config.account(system_id) is None:
            raise ValueError(f"no account {system_id!r}")
        targets = [system_id] if system_id else [a.system_id for a in self.config.accounts]
        parts = build_mo(
            text,
            source_addr=source_addr,
            destination_addr=destination_addr,
            reference=next(self._mo_references),
            segmentation=segmentation,
            encodings=encodings,
        )
        for target in targets:
            for part in parts:
                if not self._queue.add(Delivery(target, part, now, MO)):
                    self.counters.mo_dropped += 1
        return parts

    def unbind_all(self, now: float) -> list[Action]:
        """Send unbind on every bound connection (a graceful shutdown); each closes on its
        unbind_resp."""
        actions: list[Action] = []
        for conn in self._connections.values():
            if conn.mode is not None and not conn.closing and not conn.unbinding:
                conn.unbinding = True
                self._unregister_receiver(conn)
                unbind = Unbind(sequence_number=conn.next_sequence())
                actions.append(Send(conn.conn_id, unbind, now))
        return actions

    def bound_count(self) -> int:
        return sum(1 for c in self._connections.values() if c.mode is not None)

    # -- dispatch ----------------------------------------------------------------------------

    def _dispatch(self, conn: _Connection, pdu: Pdu, now: float) -> list[Action]:
        command_id = pdu.command_id
        if command_id in _BIND_MODES:
            return [self._on_bind(conn, pdu, now)]
        if command_id == CommandId.ENQUIRE_LINK:
            self.counters.enquire_links_received += 1
            return [self._respond(conn, EnquireLinkResp(sequence_number=pdu.sequence_number), now)]
        if pdu.is_response:
            return self._on_response(conn, pdu)
        if command_id == CommandId.UNBIND:
            if conn.mode is None:
                return [self._reject(conn, pdu, S.ESME_RINVBNDSTS, now)]
            self.counters.unbinds += 1
            self._unregister_receiver(conn)
            resp = UnbindResp(sequence_number=pdu.sequence_number)
            return [self._respond(conn, resp, now, close=True)]
        handler = self._handlers.get(command_id)
        if handler is None:  # deliver_sm, outbind, alert_notification: never sent by an ESME
            return [self._generic_nack(conn, S.ESME_RINVCMDID, pdu, now)]
        if conn.mode not in _CAN_SUBMIT:
            return [self._reject(conn, pdu, S.ESME_RINVBNDSTS, now)]
        return handler(conn, pdu, now)

    def _on_bind(self, conn: _Connection, pdu: Pdu, now: float) -> Send:
        resp_class = response_class(type(pdu))
        assert resp_class is not None
        system_id: str = pdu.system_id  # type: ignore[attr-defined]
        account = self.config.account(system_id)
        if conn.mode is not None:
            status = S.ESME_RALYBND
        elif account is None:
            status = S.ESME_RINVSYSID
        elif pdu.password != account.password or self._bind_limit_reached(account):  # type: ignore[attr-defined]
            status = S.ESME_RBINDFAIL
        else:
            status = S.ESME_ROK
        resp = resp_class(
            command_status=status,
            sequence_number=pdu.sequence_number,
            system_id=self.config.smsc_system_id,  # type: ignore[call-arg]
        )
        if status != S.ESME_ROK:
            self.counters.binds_failed += 1
            return self._respond(conn, resp, now)
        assert account is not None
        self.counters.binds_ok += 1
        conn.mode = _BIND_MODES[CommandId(pdu.command_id)]
        conn.system_id = system_id
        self.binds.append(BindRecord(conn.conn_id, system_id, conn.mode, conn.peer))
        if conn.mode in _CAN_RECEIVE:
            self._receivers[system_id].append(conn.conn_id)
        if system_id not in self._buckets:
            rate = account.tps if account.tps is not None else self.config.tps
            burst = self.config.tps_burst or rate
            self._buckets[system_id] = TokenBucket(rate, burst, now)
        resp.tlvs[Tag.SC_INTERFACE_VERSION] = 0x34
        return self._respond(conn, resp, now)

    def _on_response(self, conn: _Connection, pdu: Pdu) -> list[Action]:
        command_id = pdu.command_id
        if command_id in (CommandId.DELIVER_SM_RESP, CommandId.GENERIC_NACK):
            entry = conn.outstanding.pop(pdu.sequence_number, None)
            if entry is not None:
                if command_id == CommandId.DELIVER_SM_RESP and pdu.command_status == S.ESME_ROK:
                    self.counters.deliver_sm_acked += 1
                else:
                    self.counters.deliver_sm_nacked += 1
        elif command_id == CommandId.UNBIND_RESP and conn.unbinding:
            conn.closing = True
            return [Close(conn.conn_id)]
        return []

    # -- submissions -------------------------------------------------------------------------

    def _admit(self, conn: _Connection) -> int:
        """ESME_ROK, or why a submission is refused now (throttling, full delivery window)."""
        limit = self.config.msgqful_unacked
        if limit and self._unacked(conn.system_id) >= limit:
            self.counters.queue_full += 1
            return S.ESME_RMSGQFUL
        return S.ESME_ROK

    def _throttle(self, conn: _Connection, now: float) -> int:
        if not self._buckets[conn.system_id].take(now):
            self.counters.throttled += 1
            return S.ESME_RTHROTTLED
        return S.ESME_ROK

    def _on_submit_sm(self, conn: _Connection, pdu: SubmitSm, now: float) -> list[Action]:
        self.counters.submit_sm += 1
        status = self._admit(conn) or self._throttle(conn, now)
        if status:
            return [self._reject(conn, pdu, status, now, count=False)]
        message_id = self._ids.next_id()
        send = self._respond(
            conn, SubmitSmResp(sequence_number=pdu.sequence_number, message_id=message_id), now
        )
        preview = message_preview(pdu.short_message, pdu.esm_class, pdu.data_coding, pdu.tlvs)
        source = (pdu.source_addr_ton, pdu.source_addr_npi, pdu.source_addr)
        dest = (pdu.dest_addr_ton, pdu.dest_addr_npi, pdu.destination_addr)
        self._accept(conn, pdu, message_id, send.at, now, source, [dest], preview)
        return [send]

    def _on_data_sm(self, conn: _Connection, pdu: DataSm, now: float) -> list[Action]:
        self.counters.data_sm += 1
        status = self._admit(conn) or self._throttle(conn, now)
        if status:
            return [self._reject(conn, pdu, status, now, count=False)]
        message_id = self._ids.next_id()
        send = self._respond(
            conn, DataSmResp(sequence_number=pdu.sequence_number, message_id=message_id), now
        )
        preview = message_preview(b"", pdu.esm_class, pdu.data_coding, pdu.tlvs)
        source = (pdu.source_addr_ton, pdu.source_addr_npi, pdu.source_addr[:20])
        dest = (pdu.dest_addr_ton, pdu.dest_addr_npi, pdu.destination_addr[:20])
        self._accept(conn, pdu, message_id, send.at, now, source, [dest], preview)
        return [send]

    def _on_submit_multi(self, conn: _Connection, pdu: SubmitMulti, now: float) -> list[Action]:
        self.counters.submit_multi += 1
        smes = [d for d in pdu.dest_addresses if isinstance(d, SmeDest)]
        if not smes:  # no distribution lists exist here
            status = S.ESME_RINVNUMDESTS if not pdu.dest_addresses else S.ESME_RINVDLNAME
            return [self._reject(conn, pdu, status, now)]
        status = self._admit(conn) or self._throttle(conn, now)
        if status:
            return [self._reject(conn, pdu, status, now, count=False)]
        unsuccess = [
            UnsuccessSme(0, 0, d.name, S.ESME_RINVDLNAME)
            for d in pdu.dest_addresses
            if not isinstance(d, SmeDest)
        ]
        message_id = self._ids.next_id()
        resp = SubmitMultiResp(
            sequence_number=pdu.sequence_number, message_id=message_id, unsuccess_smes=unsuccess
        )
        send = self._respond(conn, resp, now)
        preview = message_preview(pdu.short_message, pdu.esm_class, pdu.data_coding, pdu.tlvs)
        source = (pdu.source_addr_ton, pdu.source_addr_npi, pdu.source_addr)
        dests = [(d.ton, d.npi, d.address) for d in smes]
        self._accept(conn, pdu, message_id, send.at, now, source, dests, preview)
        return [send]

    def _accept(
        self,
        conn: _Connection,
        pdu: SubmitSm | DataSm | SubmitMulti,
        message_id: str,
        answered_at: float,
        now: float,
        source: Address,
        destinations: list[Address],
        preview: str,
    ) -> None:
        """Record an accepted message, decide its fate and schedule its receipts."""
        config = self.config
        self.counters.accepted += 1
        self.submitted.append(pdu)
        delivered = self._fate_rng.random() >= config.fail_ratio
        error = 0 if delivered else config.fail_error
        final_at = answered_at + config.receipt_delay
        wall = self._wall()
        final_wall = wall + (final_at - now)
        record = _Message(
            message_id,
            conn.system_id,
            getattr(pdu, "service_type", ""),
            source[2],
            destinations[0][2],
            final_at,
            final_wall,
            delivered,
            error,
        )
        self._remember(record)
        mode = pdu.registered_delivery & 0x03
        if mode != 1 and not (mode == 2 and not delivered):
            return
        for destination in destinations:
            receipt = build_receipt(
                message_id=message_id,
                delivered=delivered,
                error=error,
                submitted_at=wall,
                done_at=final_wall,
                preview=preview,
                source=source,
                destination=destination,
                include_tlvs=config.receipt_tlvs,
            )
            delivery = Delivery(conn.system_id, receipt, final_at, RECEIPT, delivered)
            if self._queue.add(delivery):
                record.receipts.append(delivery)
            else:
                self.counters.receipts_dropped += 1

    def _remember(self, record: _Message) -> None:
        self._messages[record.message_id] = record
        if len(self._messages) > MESSAGE_MEMORY:
            self._messages.popitem(last=False)

    # -- query, cancel, replace --------------------------------------------------------------

    def _owned(self, conn: _Connection, message_id: str, source_addr: str) -> _Message | None:
        record = self._messages.get(message_id)
        if record is None or record.system_id != conn.system_id:
            return None
        if source_addr and source_addr != record.source_addr:
            return None
        return record

    def _on_query_sm(self, conn: _Connection, pdu: QuerySm, now: float) -> list[Action]:
        self.counters.query_sm += 1
        record = self._owned(conn, pdu.message_id, pdu.source_addr)
        if record is None:
            return [self._reject(conn, pdu, S.ESME_RQUERYFAIL, now)]
        if record.cancelled_wall is not None:
            state, final_date = 4, smpp_time(record.cancelled_wall)  # DELETED
        elif now >= record.final_at:
            state = 2 if record.delivered else 5  # DELIVERED / UNDELIVERABLE
            final_date = smpp_time(record.final_wall)
        else:
            state, final_date = 1, ""  # ENROUTE
        resp = QuerySmResp(
            sequence_number=pdu.sequence_number,
            message_id=record.message_id,
            final_date=final_date,
            message_state=state,
            error_code=min(record.error, 255) if state == 5 else 0,
        )
        return [self._respond(conn, resp, now)]

    def _on_cancel_sm(self, conn: _Connection, pdu: CancelSm, now: float) -> list[Action]:
        self.counters.cancel_sm += 1
        if pdu.message_id:
            record = self._owned(conn, pdu.message_id, pdu.source_addr)
            candidates = [record] if record is not None else []
        else:  # cancel every pending message from source_addr to destination_addr
            candidates = [
                r
                for r in self._messages.values()
                if r.system_id == conn.system_id
                and r.source_addr == pdu.source_addr
                and r.destination_addr == pdu.destination_addr
                and (not pdu.service_type or r.service_type == pdu.service_type)
            ]
        pending = [r for r in candidates if r.cancelled_wall is None and now < r.final_at]
        if not pending:
            return [self._reject(conn, pdu, S.ESME_RCANCELFAIL, now)]
        wall = self._wall()
        for record in pending:
            record.cancelled_wall = wall
            for delivery in record.receipts:
                delivery.cancelled = True
        return [self._respond(conn, CancelSmResp(sequence_number=pdu.sequence_number), now)]

    def _on_replace_sm(self, conn: _Connection, pdu: ReplaceSm, now: float) -> list[Action]:
        """Accepted for a pending message; the simulator does not model message content, so
        nothing else changes (the receipt keeps the original text preview)."""
        self.counters.replace_sm += 1
        record = self._owned(conn, pdu.message_id, pdu.source_addr)
        if record is None or record.cancelled_wall is not None or now >= record.final_at:
            return [self._reject(conn, pdu, S.ESME_RREPLACEFAIL, now)]
        return [self._respond(conn, ReplaceSmResp(sequence_number=pdu.sequence_number), now)]

    # -- outbound deliver_sm -----------------------------------------------------------------

    def _drain(self, now: float, actions: list[Action]) -> None:
        queue = self._queue
        for system_id in queue.ready_system_ids():
            while (delivery := queue.peek(system_id)) is not None:
                if delivery.cancelled:
                    queue.pop(system_id)
                    continue
                conn = self._pick_receiver(system_id)
                if conn is None:
                    break
                queue.pop(system_id)
                actions.append(self._send_delivery(conn, delivery, now))

    def _pick_receiver(self, system_id: str) -> _Connection | None:
        """The next receiver bind of system_id, round-robin, that has window room."""
        conn_ids = self._receivers.get(system_id)
        if not conn_ids:
            return None
        count = len(conn_ids)
        start = self._round_robin[system_id]
        for step in range(count):
            conn = self._connections[conn_ids[(start + step) % count]]
            if not conn.closing and len(conn.outstanding) < self.config.deliver_window:
                self._round_robin[system_id] = (start + step + 1) % count
                return conn
        return None

    def _send_delivery(self, conn: _Connection, delivery: Delivery, now: float) -> Send:
        sequence = conn.next_sequence()
        conn.outstanding[sequence] = (delivery, now)
        if self._next_expiry is None:
            self._next_expiry = now + self.config.deliver_timeout
        if not delivery.sent:
            delivery.sent = True
            if delivery.kind == RECEIPT:
                self.counters.receipts_sent += 1
                if delivery.delivered:
                    self.counters.receipts_delivered += 1
                else:
                    self.counters.receipts_failed += 1
            else:
                self.counters.mo_sent += 1
        pdu = dataclasses.replace(delivery.pdu, sequence_number=sequence)
        return Send(conn.conn_id, pdu, now)

    def _expire_outstanding(self, now: float) -> None:
        timeout = self.config.deliver_timeout
        earliest: float | None = None
        for conn in self._connections.values():
            for sequence, (_, sent_at) in list(conn.outstanding.items()):
                if sent_at + timeout <= now:
                    del conn.outstanding[sequence]
                    self.counters.deliver_sm_timeouts += 1
                elif earliest is None or sent_at < earliest:
                    earliest = sent_at
        self._next_expiry = None if earliest is None else earliest + timeout

    def _unacked(self, system_id: str) -> int:
        return sum(
            len(self._connections[c].outstanding) for c in self._receivers.get(system_id, ())
        )

    def _bind_limit_reached(self, account: Account) -> bool:
        if not account.max_binds:
            return False
        binds = sum(1 for c in self._connections.values() if c.system_id == account.system_id)
        return binds >= account.max_binds

    def _unregister_receiver(self, conn: _Connection) -> None:
        conn_ids = self._receivers.get(conn.system_id)
        if conn_ids and conn.conn_id in conn_ids:
            conn_ids.remove(conn.conn_id)

    # -- answers -----------------------------------------------------------------------------

    def _latency(self) -> float:
        config = self.config
        delay = config.latency_ms
        if config.jitter_ms:
            delay += self._latency_rng.uniform(0.0, config.jitter_ms)
        return delay / 1000.0

    def _respond(self, conn: _Connection, pdu: Pdu, now: float, close: bool = False) -> Send:
        at = now + self._latency()
        if close:
            # Jitter may reorder answers, but the close must follow every earlier one.
            at = max(at, conn.last_send_at)
            conn.closing = True
        conn.last_send_at = max(conn.last_send_at, at)
        return Send(conn.conn_id, pdu, at, close)

    def _reject(
        self, conn: _Connection, pdu: Pdu, status: int, now: float, count: bool = True
    ) -> Send:
        resp_class = response_class(type(pdu))
        assert resp_class is not None
        if count:
            self.counters.rejected += 1
        return self._respond(
            conn, resp_class(command_status=status, sequence_number=pdu.sequence_number), now
        )

    def _generic_nack(
        self,
        conn: _Connection,
        status: int,
        cause: Pdu | PduDecodeError,
        now: float,
        close: bool = False,
    ) -> Send:
        self.counters.generic_nacks += 1
        nack = GenericNack(command_status=status, sequence_number=cause.sequence_number)
        return self._respond(conn, nack, now, close=close)

    def _answer_undecodable(self, conn: _Connection, exc: PduDecodeError, now: float) -> Send:
        """generic_nack for a bad length or unknown command; otherwise the command's own
        response carrying the decoder's status (SMPP 3.4 section 3.3)."""
        cls = PDU_CLASSES.get(exc.command_id)
        resp_class = response_class(cls) if cls is not None else None
        if exc.command_status in (S.ESME_RINVCMDLEN, S.ESME_RINVCMDID) or resp_class is None:
            return self._generic_nack(conn, exc.command_status, exc, now)
        if exc.command_id in _BIND_MODES:
            self.counters.binds_failed += 1
        self.counters.rejected += 1
        resp = resp_class(command_status=exc.command_status, sequence_number=exc.sequence_number)
        return self._respond(conn, resp, now)
