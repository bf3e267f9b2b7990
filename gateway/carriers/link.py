"""One carrier's SMPP binds: supervision (reconnect with backoff), dispatch and responses.

    link = CarrierLink(profile, store)
    await link.start()
    link.submit(outbound_parts(message_id, build_submits(profile, encoded, dest, ref)))
    ...
    leftover = await link.stop(10.0)   # parts never answered: hand them to whoever resends

Decisions (see dispatch.py for ordering and the rate):
- ok: the carrier id is stored raw and normalised per the profile (receipts match on it).
- throttle (ESME_RTHROTTLED, ESME_RMSGQFUL or the profile's list): the carrier rate is halved
  and the part goes back to the head of the queue; this is never counted as a failed attempt.
- retriable: resent after ``retry_delay_s`` x attempts, at most ``max_retries`` times; then,
  like a permanent status, the part is recorded with that status and the message's remaining
  parts are recorded with it too and never sent (the message is failed either way).
- a response timeout counts as a retriable attempt (recorded, when exhausted, with
  ESME_RUNKNOWNERR); parts outstanding on a lost bind are requeued without counting. Both may
  duplicate a message the carrier did accept: counted in ``counters.duplicate_risk``.
- expired: a part whose ``expires_at`` (the message's validity, wall clock) has passed when it
  is due is not sent; its message is recorded expired and its other queued parts dropped.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.carriers.dispatch import Dispatcher
from gateway.carriers.in_progress import InProgress
from gateway.carriers.inbound import InboundHandler
from gateway.carriers.outbound import OutboundPart
from gateway.ops.carrier_profile import CarrierProfile, Reconnect, tls_client_context
from gateway.routing.health import CarrierHealth, Outcome
from gateway.running_loop import running_loop
from gateway.smpp.constants import CommandStatus as S
from gateway.smpp.esme import BindError, EsmeConnection
from gateway.smpp.receipts import MessageIdError, normalise_message_id
from gateway.smpp.session import (
    BindFailed,
    DeliverReceived,
    Event,
    PeerDead,
    ProtocolError,
    SessionConfig,
    SubmitResponse,
    SubmitTimeout,
    Unbound,
)
from gateway.store.iteration_batch import IterationBatch
from gateway.store.sqlite_store import SqliteStore, StoreError, Then, part_state_after

log = logging.getLogger(__name__)
PIPELINE_WINDOWS = 4  # parts recorded ahead, in windows per bind (see _send_and_record)
SENT_KEPT = 20_000  # accepted parts whose send time the link keeps for receipt latency

BAD_CREDENTIALS = frozenset({S.ESME_RINVPASWD, S.ESME_RINVSYSID, S.ESME_RBINDFAIL})
TIMEOUT_STATUS = S.ESME_RUNKNOWNERR
Role = Literal["transceiver", "transmitter", "receiver"]


def backoff_delay(failures: int, reconnect: Reconnect, rng: random.Random) -> float:
    """initial x 2^failures, capped at max, then spread by +-jitter."""
    base = min(reconnect.max_s, reconnect.initial_s * 2 ** min(failures, 32))
    return base * (1 + rng.uniform(-reconnect.jitter, reconnect.jitter))


@dataclass
class LinkCounters:
    bind_attempts: int = 0
    binds_up: int = 0  # successful binds since start (not the current number)
    bind_failures: int = 0
    bad_credentials: int = 0
    connect_errors: int = 0  # TCP/TLS connect failures other than tls_failures
    tls_failures: int = 0  # the SMSC's certificate failed verification (CA or host name)
    peer_dead: int = 0
    protocol_errors: int = 0
    submitted: int = 0  # PDUs sent, retries included
    accepted: int = 0
    throttled: int = 0
    retried: int = 0
    failed: int = 0
    timeouts: int = 0
    duplicate_risk: int = 0
    bad_message_ids: int = 0
    store_errors: int = 0
    expired: int = 0  # messages whose validity ran out while queued: recorded, never sent
    # first parts recorded as submitted in the write that accepted their message (reserve_direct)
    recorded_with_accept: int = 0


@dataclass(eq=False)
class _Bind:
    slot: int
    role: Role
    conn: EsmeConnection | None = None
    up: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    key: tuple[int, str] = field(init=False)  # (slot, role): the dispatcher's name for it

    def __post_init__(self) -> None:
        self.key = (self.slot, self.role)

    @property
    def can_send(self) -> bool:
        return self.up and self.role != "receiver" and self.conn is not None


class CarrierLink:
    def __init__(
        self,
        profile: CarrierProfile,
        store: SqliteStore,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sticky_binds: bool = False,
        max_retries: int = 3,
        retry_delay_s: float = 1.0,
        throttle_recover_s: float = 5.0,
        reassembly_timeout_s: float = 120.0,
        connect_timeout_s: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        self.profile = profile
        self.carrier = profile.name
        self._store = store
        self._clock = clock
        self._wall_clock = wall_clock  # validity deadlines are wall-clock (they outlive a restart)
        self._max_retries = max_retries
        self._retry_delay = retry_delay_s
        self._connect_timeout = connect_timeout_s
        self._rng = rng or random.Random()
        self.counters = LinkCounters()
        # measured health (gateway.routing.health): fed here, judged once per slot by _dispatch
        self.health = CarrierHealth(now=clock())
        self._judged_at = clock()
        self.dispatcher = Dispatcher(
            profile.throughput.tps,
            clock(),
            per_bind_tps=profile.throughput.per_bind_tps,
            sticky=sticky_binds,
            recover_after_s=throttle_recover_s,
        )
        self.inbound = InboundHandler(
            self.carrier,
            profile.receipts.id_format,
            store,
            clock,
            reassembly_timeout_s=reassembly_timeout_s,
            unmatched_ttl_s=profile.receipts.unmatched_ttl_s,
            queue_answer=self.queue_answer,
            on_receipt=self._receipt_seen,
        )
        # when each part the carrier accepted went on the wire, by its normalised id, until its
        # final receipt (for the health's submit -> receipt latency); the oldest dropped past
        # SENT_KEPT, whose receipts then count without a latency
        self._sent_at: collections.OrderedDict[str, float] = collections.OrderedDict()
        roles: tuple[Role, ...] = (
            ("transceiver",) if profile.binds.mode == "transceiver" else ("transmitter", "receiver")
        )
        self._binds = [_Bind(n, r) for n in range(profile.binds.count) for r in roles]
        self._ssl = self._ssl_context()
        self._stop = asyncio.Event()
        self._stopping = False
        self._store_writes = InProgress()  # store writes not yet committed (or failed)
        # The pipeline in front of the binds' windows (see _send_and_record): how many parts
        # taken from the dispatcher await the commit of their "submitted" record, and the parts
        # recorded, in order, waiting for a bind with room and a token
        self._recording = 0
        self._ready: collections.deque[OutboundPart] = collections.deque()
        self._ahead = 0  # the pipeline's size at the last dispatch (0: no bind could send)
        # responses and receipts of this loop iteration, in order, for one store write
        self._answers: IterationBatch[tuple[Any, ...]] = IterationBatch(self._write_answers)
        # dispatch runs as a loop callback: kicked by events, or by one timer for deadlines
        self._kicked = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None  # in self._clock() time
        self._expiring: asyncio.Task[None] | None = None
        self._bind_error: int | None = None
        self._tls_error: str | None = None  # the verification failure last logged

    # -- API -----------------------------------------------------------------------------------

    async def start(self) -> None:
        for bind in self._binds:
            bind.task = asyncio.create_task(self._supervise(bind), name=f"{self.carrier}-bind")
        self._kick()

    def submit(self, parts: list[OutboundPart]) -> None:
        """Queue the parts of one message (in part order); refused once stop() began."""
        if self._stopping:
            raise RuntimeError(f"carrier link {self.carrier} is stopping")
        self.dispatcher.enqueue(parts)
        self._kick()

    def reserve_direct(self) -> bool:
        """Room for a new message's first part to be recorded as submitted in the write that
        accepts the message, instead of pending and a submit record after it: given when the
        link is sending, no queued message waits to go before it, and the pipeline in front
        of the windows has room. Whoever got it calls `direct_recorded` once that write is
        resolved."""
        if (
            self._stopping
            or self.dispatcher.waiting
            or self._recording + len(self._ready) >= self._ahead
        ):
            return False
        self._recording += 1
        self._store_writes.started()
        return True

    def direct_recorded(self, parts: list[OutboundPart] | None) -> None:
        """The write holding a `reserve_direct` room was resolved: committed, with ``parts``
        the message's parts (the first one recorded as submitted), or None (not written, or a
        duplicate of an earlier message)."""
        self._store_writes.finished()
        self._recording -= 1
        if parts is not None:
            self.counters.recorded_with_accept += 1
            self.dispatcher.adopt(parts)
            if self._stopping:
                self.dispatcher.requeue(parts[0])  # handed back, never sent
            else:
                self._ready.append(parts[0])
        self._kick()

    def take_untouched(self) -> list[list[OutboundPart]]:
        """The queued messages none of whose parts went out (`Dispatcher.take_untouched`),
        removed from this link: to be sent through another carrier."""
        return self.dispatcher.take_untouched()

    @property
    def binds_up(self) -> int:
        return sum(b.up for b in self._binds)

    async def wait_bound(self, count: int | None = None, timeout: float = 10.0) -> None:
        """Until ``count`` binds (default: all) are up."""
        want = len(self._binds) if count is None else count
        async with asyncio.timeout(timeout):
            while self.binds_up < want:
                await asyncio.sleep(0.02)

    async def stop(self, deadline_s: float) -> list[OutboundPart]:
        """Stop sending, wait up to ``deadline_s`` for in-flight answers, unbind; returns the
        parts not sent or not answered (to be resent by someone else)."""
        self._stopping = True
        self._hand_back_ready()
        self._kick()
        end = asyncio.get_running_loop().time() + deadline_s
        while self.dispatcher.in_flight > 0 and asyncio.get_running_loop().time() < end:
            await asyncio.sleep(0.02)
        self._stop.set()
        remaining = max(0.5, end - asyncio.get_running_loop().time())
        unbinds = [b.conn.unbind(remaining) for b in self._binds if b.conn is not None and b.up]
        for outcome in await asyncio.gather(*unbinds, return_exceptions=True):
            if isinstance(outcome, BaseException):
                log.warning("%s: unbind did not finish cleanly: %r", self.carrier, outcome)
        self._kick()
        for conn in [b.conn for b in self._binds if b.conn is not None]:
            conn.close()
            # connection_lost (and Unbound's requeue of the unanswered) comes a tick later
            with contextlib.suppress(TimeoutError):
                await conn.wait_closed(0.5)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tasks = [b.task for b in self._binds if b.task is not None]
        if self._expiring is not None:
            tasks.append(self._expiring)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._answers.flush()
        await self.inbound.wait_idle()  # deliver_sm taken are stored (or given up on)
        await self._store_writes.idle()  # the store resolves every write, committed or failed
        return self.dispatcher.drain()

    # -- binds ---------------------------------------------------------------------------------

    async def _supervise(self, bind: _Bind) -> None:
        failures = 0
        while not self._stop.is_set():
            self.counters.bind_attempts += 1
            try:
                conn = await self._connect(bind)
            except ssl.SSLCertVerificationError as exc:  # an OSError: before that branch
                self._tls_failed(exc)
                delay = backoff_delay(failures, self.profile.reconnect, self._rng)
                failures += 1
                await self._sleep(delay)
                continue
            except (OSError, TimeoutError) as exc:
                self.counters.connect_errors += 1
                log.warning("%s: connect failed: %r", self.carrier, exc)
                delay = backoff_delay(failures, self.profile.reconnect, self._rng)
                failures += 1
                await self._sleep(delay)
                continue
            bind.conn = conn
            try:
                await conn.wait_bound()
            except BindError as exc:
                delay = self._bind_failed(exc.event, failures)
                failures += 1
                conn.close()
                bind.conn = None
                await self._sleep(delay)
                continue
            failures = 0
            self._bound(bind)
            await conn.wait_closed()
            bind.up = False
            bind.conn = None
            self._count_sending_binds()
            self.dispatcher.forget_bind(bind.key)
            self._kick()
            if not self._stop.is_set():
                await self._sleep(backoff_delay(0, self.profile.reconnect, self._rng))

    async def _connect(self, bind: _Bind) -> EsmeConnection:
        p = self.profile
        config = SessionConfig(
            system_id=p.account.system_id,
            password=p.account.password,
            system_type=p.account.system_type,
            bind_mode=bind.role,
            window_size=p.window.size,
            response_timeout=p.window.response_timeout_s,
            enquire_link_interval=p.enquire_link.interval_s,
            enquire_link_timeout=p.enquire_link.timeout_s,
        )

        def factory() -> EsmeConnection:
            conn = EsmeConnection(config, lambda event: self._on_event(bind, conn, event))
            return conn

        source = p.connection.source_address
        loop = asyncio.get_running_loop()
        # server_hostname only with TLS (asyncio refuses it without); None: checked against host
        tls_name = {"server_hostname": p.connection.tls_server_name} if self._ssl else {}
        async with asyncio.timeout(self._connect_timeout):
            _, conn = await loop.create_connection(
                factory,
                p.connection.host,
                p.connection.port,
                ssl=self._ssl,
                local_addr=(source, 0) if source else None,
                **tls_name,
            )
        return conn

    def _tls_failed(self, exc: ssl.SSLCertVerificationError) -> None:
        """Said once at ERROR when verification starts failing (like bad credentials), then
        only counted: retrying cannot help until the profile or the carrier's certificate
        changes, but the carrier may fix its side, so binds keep retrying with backoff."""
        self.counters.tls_failures += 1
        reason = exc.verify_message or exc.reason or str(exc)
        if reason == self._tls_error:
            return
        self._tls_error = reason
        c = self.profile.connection
        if "mismatch" in reason.lower():  # signed by a trusted CA, but for another name
            key, detail = "connection.tls_server_name", f"checked: {c.tls_server_name or c.host}"
        else:
            key, detail = "connection.tls_ca", f"trusted: {c.tls_ca or 'the system trust store'}"
        log.error(
            "%s: the SMSC's TLS certificate failed verification (%s): check %s in %s (%s); "
            "retrying with backoff",
            self.carrier,
            reason,
            key,
            self.profile.source or "the carrier profile",
            detail,
        )

    def _bound(self, bind: _Bind) -> None:
        bind.up = True
        self.counters.binds_up += 1
        self._count_sending_binds()
        if self._tls_error is not None:
            log.warning(
                "%s: TLS certificate verified again after: %s", self.carrier, self._tls_error
            )
            self._tls_error = None
        if self._bind_error is not None:
            log.warning("%s: bind up again after %s", self.carrier, _status_name(self._bind_error))
            self._bind_error = None
        self._kick()

    def _count_sending_binds(self) -> None:
        # no bind able to send: no traffic for this carrier at once (CarrierHealth.share)
        self.health.set_binds(sum(b.can_send for b in self._binds))

    def _bind_failed(self, event: BindFailed | Unbound, failures: int) -> float:
        self.counters.bind_failures += 1
        if isinstance(event, BindFailed) and event.command_status in BAD_CREDENTIALS:
            self.counters.bad_credentials += 1
            status = event.command_status
            if status != self._bind_error:
                log.error(
                    "%s: bind refused (%s): check system_id/password in %s; retrying every %gs",
                    self.carrier,
                    _status_name(status),
                    self.profile.source or "the carrier profile",
                    self.profile.reconnect.bad_credentials_delay_s,
                )
                self._bind_error = status
            return self.profile.reconnect.bad_credentials_delay_s
        log.warning("%s: bind failed: %s", self.carrier, event)
        return backoff_delay(failures, self.profile.reconnect, self._rng)

    async def _sleep(self, delay: float) -> None:
        await _wait(self._stop, delay)

    def _ssl_context(self) -> ssl.SSLContext | None:
        # the loader already built one; this raises ConfigError only if the CA file changed
        # (or went) since the profile was loaded
        path = self.profile.source or f"carrier profile {self.carrier}"
        return tls_client_context(self.profile.connection, path)

    # -- events --------------------------------------------------------------------------------

    def _on_event(self, bind: _Bind, conn: EsmeConnection, event: Event) -> None:
        if isinstance(event, DeliverReceived):  # the commonest after responses; frees no window
            self.inbound.handle(conn, event.pdu)
            return
        if isinstance(event, SubmitResponse):
            self._on_response(event.ref, event.pdu)
        elif isinstance(event, SubmitTimeout):
            self.health.failed(Outcome.TIMEOUT, self._clock())
            self.counters.timeouts += 1
            self.counters.duplicate_risk += 1
            self._retry(event.ref, TIMEOUT_STATUS)
        elif isinstance(event, Unbound):
            if event.outstanding:
                log.warning(
                    "%s: bind lost (%s) with %d unanswered; requeued",
                    self.carrier,
                    event.reason.value,
                    len(event.outstanding),
                )
            for part in event.outstanding:
                self.counters.duplicate_risk += 1
                self.dispatcher.requeue(part)
        elif isinstance(event, PeerDead):
            self.counters.peer_dead += 1
            log.warning("%s: peer stopped answering enquire_link; replacing bind", self.carrier)
        elif isinstance(event, ProtocolError):
            self.counters.protocol_errors += 1
            log.warning("%s: undecodable PDU answered: %s", self.carrier, event.error)
        self._kick()

    def _on_response(self, part: OutboundPart, pdu: Any) -> None:
        status = pdu.command_status
        outcome = self.profile.classify_status(status)
        now = self._clock()
        if outcome == "ok":
            self.health.answered(now - part.sent_at, now)
            self.counters.accepted += 1
            self.dispatcher.done(part)
            raw = getattr(pdu, "message_id", "") or None
            norm = None
            if raw is not None:
                try:
                    norm = normalise_message_id(raw, self.profile.receipts.id_format)
                except MessageIdError:
                    self.counters.bad_message_ids += 1
                    log.warning(
                        "%s: message id %r is not %s; receipts cannot match it",
                        self.carrier,
                        raw,
                        self.profile.receipts.id_format,
                    )
            self._record_resp(part, 0, raw, norm)
        elif outcome == "throttle":
            self.health.failed(Outcome.THROTTLED, now, now - part.sent_at)
            self.counters.throttled += 1
            self.dispatcher.rate.slow_down(now)
            self.dispatcher.requeue(part)
        elif outcome == "retriable":
            self.health.failed(Outcome.ERROR, now, now - part.sent_at)
            self._retry(part, status)
        else:
            self.health.failed(Outcome.REJECTED, now, now - part.sent_at)
            self._fail(part, status)

    def _retry(self, part: OutboundPart, status: int) -> None:
        part.attempts += 1
        if part.attempts > self._max_retries:
            self._fail(part, status)
            return
        self.counters.retried += 1
        self.dispatcher.requeue(part, self._clock() + self._retry_delay * part.attempts)

    def _fail(self, part: OutboundPart, status: int) -> None:
        self.counters.failed += 1
        self.dispatcher.done(part)
        log.info(
            "%s: %s part %d failed: %s",
            self.carrier,
            part.message_id,
            part.part_no,
            _status_name(status),
        )
        self._record_resp(part, status, None, None)
        for rest in self.dispatcher.drop_message(part.message_id):
            self._record_resp(rest, status, None, None)

    def _expire(self, part: OutboundPart) -> None:
        """The part's validity ran out while it was queued: it and the rest of its message are
        recorded as expired instead of being sent late."""
        self.counters.expired += 1
        self.dispatcher.done(part)
        self.dispatcher.drop_message(part.message_id)
        log.info(
            "%s: %s expired before part %d was sent", self.carrier, part.message_id, part.part_no
        )
        detail = {
            "reason": "validity ran out before it could be sent",
            "when": "dispatch",
            "carrier": self.carrier,
        }
        self._write(self._store.record_expired, part.message_id, detail)

    def _record_resp(
        self, part: OutboundPart, status: int, raw: str | None, norm: str | None
    ) -> None:
        answer = ("resp", part.message_id, part.part_no, status, raw, norm)
        self._answers.add(answer, self._resp_recorded)
        if norm is not None:
            sent = self._sent_at
            sent[norm] = part.sent_at
            if len(sent) > SENT_KEPT:
                sent.popitem(last=False)

    def _receipt_seen(self, norm: str, state: str) -> None:
        """A receipt's verdict for the health: delivered or failed (final ones only), with the
        time since its part went out when the link still knows it."""
        verdict = part_state_after(state)  # as the store reads it
        if verdict is None:
            return  # enroute, accepted, unknown: not a verdict yet
        now = self._clock()
        sent = self._sent_at.pop(norm, None)
        latency = None if sent is None else now - sent
        if verdict == "failed":
            self.health.failed(Outcome.RECEIPT_FAILED, now, latency)
        else:
            self.health.delivered(latency, now)

    def queue_answer(self, answer: tuple[Any, ...], then: Then[Any]) -> None:
        """A response or a receipt to record (as `SqliteStore.record_answers` takes them), with
        the callback for its result. The answers of one loop iteration go to the store in one
        write, in their order, so a receipt never overtakes its response."""
        self._answers.add(answer, then)

    def _write_answers(self, answers: list[tuple[Any, ...]], then: Then[list[Any]]) -> None:
        def done(error: BaseException | None, results: list[Any] | None) -> None:
            self._store_writes.finished()
            then(error, results)

        self._store.record_answers(self.carrier, answers, then=done)
        self._store_writes.started()

    def _resp_recorded(self, error: BaseException | None, _applied: Any) -> None:
        if error is not None:
            self.counters.store_errors += 1
            log.error("%s: response not recorded: %r", self.carrier, error)

    def _write(self, write: Callable[..., Any], *args: Any) -> None:
        # The store queues a write at the call, so writes are applied in event order; `then`
        # is called on this loop once it is committed (or failed).
        self._answers.flush()
        try:
            write(*args, then=self._write_done)
        except StoreError as exc:
            self.counters.store_errors += 1
            log.error("%s: store write refused: %r", self.carrier, exc)
            return
        self._store_writes.started()

    def _write_done(self, error: BaseException | None, _result: Any) -> None:
        self._store_writes.finished()
        if error is not None:
            self.counters.store_errors += 1
            log.error("%s: store write failed: %r", self.carrier, error)

    # -- dispatch ------------------------------------------------------------------------------

    def _kick(self) -> None:
        """Run the dispatcher once more in this loop iteration (however many events ask)."""
        if not self._kicked and not self._stop.is_set():
            self._kicked = True
            running_loop().call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._kicked = False
        if self._stop.is_set():
            return
        now = self._clock()
        deadlines = [now + 1.0]  # throttle recovery and health verdicts: at least every second
        if now - self._judged_at >= self.health.policy.slot_s:
            self._judged_at = now
            self.health.evaluate(now)
        try:
            if not self._stopping:
                deadline = self._send_and_record(now)
                if deadline is not None:
                    deadlines.append(deadline)
            expiry = self.inbound.next_deadline()
            if expiry is not None and self._expiring is None:
                if expiry <= now:
                    self._expiring = asyncio.create_task(self._expire_reassembly())
                else:
                    deadlines.append(expiry)
        except Exception:  # a bug: say so, and try again in a second rather than stall
            log.exception("%s: dispatch failed", self.carrier)
        finally:
            self._arm(min(deadlines), now)

    async def _expire_reassembly(self) -> None:
        try:
            await self.inbound.expire()
        except StoreError as exc:  # the held parts stay unacked: the carrier redelivers them
            self.counters.store_errors += 1
            log.warning("%s: expired MO parts not stored: %s", self.carrier, exc)
        finally:
            self._expiring = None
            self._kick()

    def _arm(self, when: float, now: float) -> None:
        # One timer; one already due no later than `when` stays (an early run is harmless).
        if self._timer is not None and self._timer_at is not None and self._timer_at <= when:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = asyncio.get_running_loop().call_later(max(0.0, when - now), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._kick()

    def _send_and_record(self, now: float) -> float | None:
        """Send what the binds' windows and the rate allow, and record the parts to send next;
        returns when to try again (a token, a retry delay), None when an event will say.

        A part goes on the wire only once its "submitted" record is committed: after a crash
        every part the carrier may have is then known as submitted, so the start-up resend
        counts each possible duplicate (a part still pending was never sent). Parts are taken
        from the dispatcher and recorded ahead of the windows (`_record_submits`), then wait in
        `_ready` for any bind with room; the rate's tokens are spent as they go out, so the
        carrier sees the configured TPS however the commits bunch them.
        """
        dispatcher = self.dispatcher
        ready = self._ready
        wait: float | None = None
        room = 0
        sending = 0
        for bind in self._binds:
            conn = bind.conn
            if conn is None or not bind.can_send:
                continue
            sending += 1
            skipped = 0  # parts pinned to another bind, left in front (sticky binds only)
            while len(ready) > skipped and conn.window_free > 0:
                part = ready[skipped]
                if part.expires_at is not None and self._wall_clock() >= part.expires_at:
                    del ready[skipped]
                    self._expire(part)  # it waited past its validity
                    continue
                pinned = dispatcher.pinned_to(part.message_id)
                if pinned is not None and pinned != bind.key:
                    skipped += 1
                    continue
                delay = dispatcher.spend(bind.key, now)
                if delay > 0:
                    wait = now + delay if wait is None else min(wait, now + delay)
                    break
                del ready[skipped]
                if not conn.submit(part.pdu, part):
                    ready.insert(skipped, part)
                    break
                dispatcher.pin(part.message_id, bind.key)
                part.sent_at = now
                self.counters.submitted += 1
            room += conn.window_free
        if not sending:
            self._ahead = 0
            return wait
        # Records are written ahead, so windows refill as answers come in instead of waiting
        # for a commit each time: PIPELINE_WINDOWS windows' worth per bind, enough to cover the
        # store's commit latency at full rate on loopback (one window was not: the queue grew).
        self._ahead = ahead = PIPELINE_WINDOWS * self.profile.window.size * sending + room
        taken: list[OutboundPart] = []
        while self._recording + len(ready) + len(taken) < ahead:
            part = dispatcher.take(None, now, rated=False)
            if part is None:
                later = dispatcher.next_deadline(None, now)
                if later is not None:
                    wait = later if wait is None else min(wait, later)
                break
            if part.expires_at is not None and self._wall_clock() >= part.expires_at:
                self._expire(part)
                continue
            taken.append(part)
        if taken:
            self._record_submits(taken)
        return wait

    def _record_submits(self, parts: list[OutboundPart]) -> None:
        """Record the parts taken ahead as submitted, in one store write; they join `_ready`,
        in order, once it is committed."""

        def recorded(error: BaseException | None, _result: Any) -> None:
            self._store_writes.finished()
            self._recording -= len(parts)
            if error is not None:
                self._not_recorded(parts, error)
            elif self._stopping:
                self.dispatcher.requeue_all(parts)  # handed back, never sent
            else:
                self._ready.extend(parts)
            self._kick()

        keys = [(part.message_id, part.part_no) for part in parts]
        try:
            self._store.record_submits(keys, self.carrier, then=recorded)
        except StoreError as exc:
            self._not_recorded(parts, exc)
            return
        self._recording += len(parts)
        self._store_writes.started()

    def _hand_back_ready(self) -> None:
        """The recorded parts that did not go out return to the queue, in order."""
        self.dispatcher.requeue_all(list(self._ready))
        self._ready.clear()

    def _not_recorded(self, parts: list[OutboundPart], error: BaseException) -> None:
        # Not sent unrecorded: they wait (the store is full or failing) and are tried again,
        # all after the same delay and in their order.
        self.counters.store_errors += len(parts)
        log.error(
            "%s: submit of %d parts (%s first) not recorded, retried: %r",
            self.carrier,
            len(parts),
            parts[0].message_id,
            error,
        )
        self.dispatcher.requeue_all(parts, self._clock() + self._retry_delay)


async def _wait(event: asyncio.Event, timeout: float) -> None:
    # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()


def _status_name(status: int) -> str:
    try:
        return S(status).name
    except ValueError:
        return hex(status)
