"""`GatewayCore`: the `GatewayService` the API server calls, over the store and carrier links.

    core = GatewayCore(store, links, limits)
    await core.resend_pending()          # once, at start-up, after the links are started
    server = await start_from_config(core, config.api, config.limits)

Carrier choice is deliberately simple until routing lands: a `sender_pool` that names a carrier
profile sends through that carrier with the profile's own source_addr; anything else goes to
the first carrier by name. A message is answered only after `store.accept` committed it; the
parts are then handed to the link. A crash between the two is covered by `resend_pending`
(at-least-once), which rebuilds the parts from the stored text and concatenation reference.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway import __version__
from gateway.api.errors import ApiError, ErrorCode
from gateway.api.schema import SenderKind, SendRequest
from gateway.api.service import Reply
from gateway.carriers.link import CarrierLink
from gateway.carriers.outbound import OutboundPart, build_submits, outbound_parts
from gateway.ops.carrier_profile import CarrierProfile
from gateway.ops.config import Limits
from gateway.routing.routes import Route, RouteTable, default_table
from gateway.running_loop import running_loop
from gateway.smpp.constants import DataCoding
from gateway.smpp.pdu import SubmitSm
from gateway.smpp.segmentation import SegmentationError, SegmentMethod
from gateway.smpp.text import EncodedText, encode_text
from gateway.store.iteration_batch import IterationBatch
from gateway.store.sqlite_store import (
    Event,
    MessageRecord,
    NewMessage,
    SqliteStore,
    StoreBusy,
)

log = logging.getLogger(__name__)

_PREFERRED = {
    "gsm7": DataCoding.SMSC_DEFAULT,
    "latin1": DataCoding.LATIN_1,
    "ucs2": DataCoding.UCS2,
}
EVENT_SAFETY_POLL_S = 1.0  # the store announces new events; this only bounds a missed one
RECENT_EVENTS = 2048  # events kept in memory for subscribers following the log live
REROUTE_INTERVAL_S = 1.0  # how often queued messages of a carrier with no bind move elsewhere
# Enum members read per message, as module globals (docs/ARCHITECTURE.md, "Per-message objects")
_POOL = SenderKind.POOL
_UDH8 = SegmentMethod.UDH8


class GatewayCore:
    def __init__(
        self,
        store: SqliteStore,
        links: dict[str, CarrierLink],
        limits: Limits,
        *,
        routes: RouteTable | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.links = links  # by carrier name; the daemon swaps entries on SIGHUP
        self.limits = limits
        # which carrier a message takes (the daemon's [[routes]]; replaced on SIGHUP)
        self.routes = default_table(links) if routes is None else routes
        self._rng = rng or random.Random()
        # numbers whose owner opted out (the store's opt_outs; `load_opt_outs` at start)
        self.opted_out: set[str] = set()
        self.started = time.monotonic()
        self.accepted = 0
        self.duplicates = 0
        self.resent_after_restart = 0
        # resent parts that had been submitted without a recorded response: the carrier may
        # have them already (at-least-once), so at most this many duplicates
        self.possible_duplicates_after_restart = 0
        self.resend_failures = 0
        self.expired_before_send = 0  # at start-up; the links count their own
        self.rerouted = 0  # messages a failover moved to another carrier before they went out
        self.housekeeping = Housekeeping()
        self._refs = itertools.count(self._rng.randrange(0x10000))
        self._event_head = 0
        self._listening = False
        self._event_waiters: list[asyncio.Future[None]] = []
        self._safety_timer: asyncio.TimerHandle | None = None
        # The newest committed events as API maps, contiguous in seq: a subscriber that keeps
        # up is served from here, without a read (and a JSON decode) per event.
        self._recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT_EVENTS)
        # messages accepted during this loop iteration, for one store write (`accept_many`)
        self._accepts: IterationBatch[tuple[NewMessage, float]] = IterationBatch(
            lambda items, then: self.store.accept_many(items, then=then)
        )

    # -- sending -------------------------------------------------------------------------------

    def send_sms(self, req: SendRequest, client: str) -> asyncio.Future[dict[str, Any]]:
        """Validate, encode and queue the message for the store; the future resolves with the
        reply once the store committed it (and the parts went to the link). A future rather
        than a coroutine: the API server then needs no task per request."""
        reply: asyncio.Future[dict[str, Any]] = running_loop().create_future()

        def answered(error: BaseException | None, result: dict[str, Any] | None) -> None:
            if reply.done():
                return
            if error is not None:
                reply.set_exception(error)
            else:
                reply.set_result(result)  # type: ignore[arg-type]

        self.send_sms_then(req, client, answered)
        return reply

    def send_sms_then(self, req: SendRequest, client: str, then: Reply) -> None:
        """`send_sms` with a callback instead of a future (the API server's hot path): once the
        store has answered, ``then(None, reply)`` or ``then(error, None)`` is called on this
        loop. Refusals found before that (ApiError) are raised at once, ``then`` not called;
        the store's own (busy: E_QUEUE_FULL) come through ``then``, as the messages of one
        loop iteration are stored together (an `IterationBatch`)."""
        if req.to in self.opted_out:
            raise ApiError(ErrorCode.E_OPTED_OUT, "to: the recipient opted out of messages")
        link = self._pick(req)
        profile = link.profile
        if self.queue_depth() >= self.limits.queue_max:
            raise ApiError(
                ErrorCode.E_QUEUE_FULL, f"the queue is over its limit of {self.limits.queue_max}"
            )
        source = profile.submit.source_addr if req.sender_kind == _POOL else req.sender
        encoded = _encode(profile, req)
        ref = self._next_ref(profile)
        pdus = _build(profile, encoded, req.to, ref, source, req.validity_s, req.priority)
        now = time.time()
        # Part 1 recorded as submitted with the message when the link has room for it now:
        # one write and one commit fewer between the client and the carrier.
        direct = link.reserve_direct()
        msg = NewMessage(
            client_id=client,
            source_addr=source,
            dest_addr=req.to,
            payload=encoded.payload,
            data_coding=encoded.data_coding,
            parts_total=len(pdus),
            client_ref=req.client_ref,
            idempotency_key=req.idempotency_key,
            carrier=link.carrier,
            text=req.text,
            concat_ref=ref,
            validity_s=req.validity_s,
            priority=req.priority,
            first_part_submitted=direct,
        )
        expires = None if req.validity_s is None else now + req.validity_s

        def committed(error: BaseException | None, result: tuple[str, bool]) -> None:
            # The parts go to the link whatever becomes of the reply.
            if error is not None:
                if direct:
                    link.direct_recorded(None)
                if isinstance(error, StoreBusy):
                    error = ApiError(ErrorCode.E_QUEUE_FULL, f"the store is busy: {error}")
                then(error, None)
                return
            message_id, created = result
            if not created:
                if direct:
                    link.direct_recorded(None)
                self.duplicates += 1
                then(None, {"message_id": message_id, "duplicate": True})
                return
            self.accepted += 1
            parts = outbound_parts(message_id, pdus, expires)
            if direct:
                link.direct_recorded(parts)
            else:
                _hand_over(link, parts)
            then(
                None,
                {
                    "message_id": message_id,
                    "duplicate": False,
                    "parts": len(pdus),
                    "data_coding": encoded.data_coding,
                },
            )

        # with the others of this loop iteration: one job, one callback, one
        # call_soon_threadsafe, whatever their number
        self._accepts.add((msg, now), committed)

    async def load_opt_outs(self) -> int:
        """Read the opted-out numbers (at start, before the API serves); how many."""
        self.opted_out = await self.store.opted_out()
        return len(self.opted_out)

    async def record_opt_out(self, number: str, source: str, detail: dict[str, Any]) -> bool:
        """A provider said `number` unsubscribed (Twilio's 21610 and the like): sms.send refuses
        it from the moment this is stored. True if it is new."""
        new = await self.store.record_opt_out(number, source, detail)
        self.opted_out.add(number)
        if new:
            log.warning("opt-out recorded for %s (%s)", number, source)
        return new

    async def remove_opt_out(self, number: str) -> bool:
        removed = await self.store.remove_opt_out(number)
        self.opted_out.discard(number)
        return removed

    def _pick(self, req: SendRequest) -> CarrierLink:
        """The carrier for a message: the one its sender_pool names, else by the route table
        (longest prefix; a draw by weight x health share among the route's carriers, a share
        being 0 while a carrier has no sending bind; when every share is 0, by weight alone,
        so the message waits on one for its binds)."""
        links = self.links
        if not links:
            raise ApiError(ErrorCode.E_INTERNAL, "no carrier is configured")
        if req.sender_kind == _POOL:
            link = links.get(req.sender)
            if link is None:
                raise ApiError(ErrorCode.E_BAD_NUMBER, f"sender_pool: no carrier {req.sender!r}")
            return link
        table = self.routes
        route = table.route_for(req.to)
        try:
            traffic_class = table.traffic_class(req.traffic_class)
        except KeyError:
            raise ApiError(
                ErrorCode.E_BAD_PARAMS, f"traffic_class: no class {req.traffic_class!r}"
            ) from None
        if route is not None:
            carriers = route.carriers
            if len(carriers) == 1:  # the usual route: one carrier, nothing to draw
                link = links.get(carriers[0].carrier)
                if link is not None:
                    return link
            else:
                first = table.first(route, traffic_class, self._shares(route), self._rng)
                if first is None:
                    present = {c.carrier: 1.0 for c in carriers if c.carrier in links}
                    first = table.first(route, traffic_class, present, self._rng)
                if first is not None:
                    return links[first]
        raise ApiError(ErrorCode.E_NO_ROUTE, f"to: no route with a carrier for {req.to}")

    def _next_ref(self, profile: CarrierProfile) -> int:
        mask = 0xFF if profile.submit.segmentation == _UDH8 else 0xFFFF
        return next(self._refs) & mask

    def queue_depth(self) -> int:
        """Parts waiting or in flight in every carrier link."""
        depth = 0
        for link in self.links.values():  # a loop, not sum(genexpr): once per sms.send
            dispatcher = link.dispatcher
            depth += len(dispatcher) + dispatcher.in_flight
        return depth

    async def resend_pending(self) -> int:
        """Hand every part the store lists as unsent or unanswered to its carrier again."""
        pending = await self.store.pending_after_restart()
        by_message: dict[str, list[int]] = {}
        submitted = {(p.message_id, p.part_no) for p in pending if p.state == "submitted"}
        for part in pending:
            by_message.setdefault(part.message_id, []).append(part.part_no)
        resent = 0
        for message_id, part_nos in by_message.items():
            record = await self.store.get_message(message_id)
            if record is not None and await self._expire_if_due(record):
                continue
            parts = None if record is None else self._rebuild(record)
            if parts is None:
                self.resend_failures += 1
                continue
            wanted = set(part_nos)
            link = self.links[record.carrier or ""]  # _rebuild checked it exists
            todo = [p for p in parts if p.part_no in wanted]
            _hand_over(link, todo)
            resent += len(todo)
            self.possible_duplicates_after_restart += sum(
                (p.message_id, p.part_no) in submitted for p in todo
            )
        self.resent_after_restart += resent
        if by_message:
            log.info(
                "start-up: %d parts of %d messages resent (at-least-once), %d not rebuildable,"
                " %d expired",
                resent,
                len(by_message),
                self.resend_failures,
                self.expired_before_send,
            )
        return resent

    async def take_over(self, link: CarrierLink, leftover: list[OutboundPart]) -> tuple[int, int]:
        """Queue on ``link`` (a carrier's new link after its profile changed) the parts its old
        link handed back. A message none of whose parts is missing from ``leftover`` is built
        again with the new profile; one already partly sent keeps its old parts, so that its
        segments stay consistent. Returns (parts rebuilt, parts kept as they were)."""
        by_message: dict[str, list[OutboundPart]] = {}
        for part in leftover:
            by_message.setdefault(part.message_id, []).append(part)
        rebuilt = kept = 0
        for message_id, parts in by_message.items():
            record = await self.store.get_message(message_id)
            fresh = None
            if record is not None and len(parts) == record.parts_total:
                fresh = self._rebuild(record)
            if fresh is None:
                kept += len(parts)
                _hand_over(link, sorted(parts, key=lambda p: p.part_no))
            else:
                rebuilt += len(fresh)
                _hand_over(link, fresh)
        return rebuilt, kept

    async def _expire_if_due(self, record: MessageRecord) -> bool:
        expires_at = record.expires_at()
        now = time.time()
        if expires_at is None or now < expires_at:
            return False
        detail = {
            "reason": f"validity of {record.validity_s} s ran out before it could be sent",
            "validity_s": record.validity_s,
            "when": "start-up resend",
        }
        if await self.store.record_expired(record.id, detail, now=now):
            self.expired_before_send += 1
            log.info("start-up: %s not resent: %s", record.id, detail["reason"])
        return True

    def _rebuild(
        self, record: MessageRecord, link: CarrierLink | None = None
    ) -> list[OutboundPart] | None:
        """The message's parts built again (same text, reference and part count) with the
        current profile of its carrier (or of `link`); the validity on the PDUs is what is left
        of the client's (SMPP's relative validity counts from the SMSC's receipt, not from our
        acceptance)."""
        link = link or self.links.get(record.carrier or "")
        if link is None or record.concat_ref is None:
            log.error(
                "cannot resend %s: carrier %r gone or no stored reference",
                record.id,
                record.carrier,
            )
            return None
        profile = link.profile
        expires_at = record.expires_at()
        validity_s = None if expires_at is None else max(1, math.ceil(expires_at - time.time()))
        try:
            if record.text is not None:
                encoded = encode_text(record.text, [record.data_coding], profile.submit.packed)
            else:
                encoded = _binary(record.payload, record.data_coding)
            pdus = _build(
                profile,
                encoded,
                record.dest_addr,
                record.concat_ref,
                record.source_addr,
                validity_s,
                record.priority or 0,
            )
        except (ValueError, ApiError) as exc:  # the profile changed under the stored message
            log.error("cannot resend %s: %s", record.id, exc)
            return None
        if len(pdus) != record.parts_total:
            log.error(
                "cannot resend %s: the profile now makes %d parts, not %d",
                record.id,
                len(pdus),
                record.parts_total,
            )
            return None
        return outbound_parts(record.id, pdus, record.expires_at())

    # -- housekeeping --------------------------------------------------------------------------

    async def housekeep(self, now: float | None = None) -> tuple[int, int]:
        """One pass: prune events past `limits.event_retention_s` (keeping any a registered
        consumer has not acked) and expired unmatched receipts; returns both counts."""
        ts = time.time() if now is None else now
        events = await self.store.prune_events(self.limits.event_retention_s, now=ts)
        unmatched = await self.store.prune_unmatched(now=ts)
        self.housekeeping.record(events, unmatched)
        log.debug("housekeeping: pruned %d events, %d unmatched receipts", events, unmatched)
        return events, unmatched

    async def reroute(self) -> int:
        """Failover: the queued messages of each carrier that has no sending bind (health share
        0), none of whose parts went out, move to another carrier of their route that can send
        (by weight x health share), rebuilt with its profile and recorded as rerouted; a
        message with nowhere better to go stays. Returns how many moved."""
        moved = 0
        for link in list(self.links.values()):
            if link.health.share > 0 or not len(link.dispatcher):
                continue
            for parts in link.take_untouched():
                if await self._reroute(link, parts):
                    moved += 1
                else:
                    link.dispatcher.enqueue(parts)
        self.rerouted += moved
        return moved

    async def _reroute(self, link: CarrierLink, parts: list[OutboundPart]) -> bool:
        record = await self.store.get_message(parts[0].message_id)
        if record is None:
            return False
        target = self._alternative(record.dest_addr, link.carrier)
        fresh = None if target is None else self._rebuild(record, target)
        if target is None or fresh is None:
            return False
        detail = {"from": link.carrier, "to": target.carrier, "reason": "no bind up"}
        if not await self.store.record_rerouted(record.id, target.carrier, detail):
            return False
        _hand_over(target, fresh)
        return True

    def _shares(self, route: Route, leaving: str | None = None) -> dict[str, float]:
        """Each configured carrier of the route (but `leaving`) and the share of its weight its
        measured health gives it (0 with no sending bind; gateway.routing.health)."""
        links = self.links
        return {
            c.carrier: lk.health.share
            for c in route.carriers
            if c.carrier != leaving and (lk := links.get(c.carrier))
        }

    def _alternative(self, destination: str, leaving: str) -> CarrierLink | None:
        """Another carrier of the destination's route that can take traffic now."""
        route = self.routes.route_for(destination)
        if route is None:
            return None
        shares = self._shares(route, leaving)
        first = self.routes.first(route, self.routes.traffic_class(None), shares, self._rng)
        return None if first is None else self.links[first]

    async def run_rerouting(self, interval_s: float = REROUTE_INTERVAL_S) -> None:
        """`reroute` every `interval_s` until cancelled; a failed pass is logged, not fatal."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                moved = await self.reroute()
            except Exception:
                log.exception("rerouting pass failed")
                continue
            if moved:
                log.warning("failover: %d queued messages moved to another carrier", moved)

    async def run_housekeeping(self, interval_s: float) -> None:
        """`housekeep` every `interval_s` until cancelled; a failed pass is logged, not fatal."""
        self.housekeeping.interval_s = interval_s
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.housekeep()
            except Exception:  # a busy or failing store: try again next interval
                self.housekeeping.failures += 1
                log.exception("housekeeping pass failed")

    # -- reading -------------------------------------------------------------------------------

    async def get_sms(self, message_id: str) -> dict[str, Any] | None:
        record = await self.store.get_message(message_id)
        if record is None:
            return None
        return {
            "message_id": record.id,
            "state": record.state,
            "to": record.dest_addr,
            "from": record.source_addr,
            "client_ref": record.client_ref,
            "carrier": record.carrier,
            "data_coding": record.data_coding,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
            "parts": [
                {
                    "part": p.part_no,
                    "state": p.state,
                    "carrier": p.carrier,
                    "carrier_message_id": p.carrier_message_id_raw,
                    "submitted_at": p.submitted_at,
                    "resp_status": p.resp_status,
                    "resp_at": p.resp_at,
                    "receipt_state": p.receipt_state,
                    "receipt_err": p.receipt_err,
                    "receipt_at": p.receipt_at,
                }
                for p in record.parts
            ],
            "history": [
                {"seq": h.seq, "at": h.at, "event": h.event, "detail": h.detail}
                for h in record.history
            ],
        }

    async def status(self) -> dict[str, Any]:
        carriers = {}
        for name, link in sorted(self.links.items()):
            carriers[name] = {
                "binds_up": link.binds_up,
                "window": link.profile.window.size,
                "queued": len(link.dispatcher),
                "in_flight": link.dispatcher.in_flight,
                "tps": link.dispatcher.rate.rate,
                "counters": vars(link.counters).copy(),
                "health": link.health.snapshot(time.monotonic()),
            }
        return {
            "version": __version__,
            "uptime_s": round(time.monotonic() - self.started, 3),
            "queue": {
                "depth": self.queue_depth(),
                "limit": self.limits.queue_max,
                "rerouted": self.rerouted,
            },
            "carriers": carriers,
            "routes": {
                route.prefix: {c.carrier: c.weight for c in route.carriers}
                for route in self.routes.routes()
            },
            "messages": {
                "accepted": self.accepted,
                "duplicates": self.duplicates,
                "resent_after_restart": self.resent_after_restart,
                "possible_duplicates_after_restart": self.possible_duplicates_after_restart,
                "resend_failures": self.resend_failures,
                "expired_before_send": self.expired_before_send
                + sum(lk.counters.expired for lk in self.links.values()),
            },
            "housekeeping": vars(self.housekeeping).copy(),
            "store": {
                "queued": self.store.queued,
                "commits": self.store.commits,
                "jobs_committed": self.store.jobs_committed,
                "checkpoints": self.store.checkpoints,
                "wal_frames": self.store.wal_frames,
            },
        }

    # -- events --------------------------------------------------------------------------------

    async def read_events(self, consumer: str, after_seq: int, limit: int) -> list[dict[str, Any]]:
        await self._listen()
        recent = self._recent
        # Only when the memory reaches the head: the head may be known (read from the log)
        # before the announcement of its commit has run, and an empty answer then would make
        # a subscriber spin on wait_for_events without ever yielding.
        if recent and recent[0]["seq"] <= after_seq + 1 and recent[-1]["seq"] >= self._event_head:
            start = max(after_seq + 1 - recent[0]["seq"], 0)  # seqs in `recent` are contiguous
            if 2 * start < len(recent):
                return list(itertools.islice(recent, start, start + limit))
            # A subscriber that keeps up reads near the tail: walk from that end, not past the
            # whole deque (islice from the left cost a skip of up to RECENT_EVENTS per read).
            tail = list(itertools.islice(reversed(recent), len(recent) - start))
            tail.reverse()
            return tail[:limit]
        events = await self.store.read_events(consumer, after_seq, limit)
        return [_event_map(e.seq, e.at, e.kind, e.body) for e in events]

    async def cursor(self, consumer: str) -> int:
        return await self.store.cursor(consumer)

    async def ack_events(self, consumer: str, seq: int) -> None:
        try:
            await self.store.ack_events(consumer, seq)
        except ValueError as exc:
            raise ApiError(ErrorCode.E_BAD_PARAMS, f"seq: {exc}") from exc

    async def wait_for_events(self, after_seq: int) -> None:
        """Return once the log holds an event after ``after_seq``. The store announces every
        commit that appended events (receipts and MO are appended by the links' store jobs);
        the read at first use catches what was committed before we listened."""
        await self._listen()
        while self._event_head <= after_seq:
            waiter = asyncio.get_running_loop().create_future()
            self._event_waiters.append(waiter)
            await waiter

    async def _listen(self) -> None:
        if self._listening:
            return
        self._listening = True
        loop = asyncio.get_running_loop()
        self.store.add_event_listener(loop, self._on_events)
        self._event_head = max(self._event_head, await self.store.last_event_seq())
        self._safety_timer = loop.call_later(EVENT_SAFETY_POLL_S, self._safety_poll)

    def _on_events(self, head: int, events: list[Event]) -> None:
        recent = self._recent
        if recent and recent[-1]["seq"] + 1 != events[0].seq:
            recent.clear()  # not contiguous (cannot happen with one writer): start afresh
        recent.extend(_event_map(e.seq, e.at, e.kind, e.body) for e in events)
        self._event_head = max(self._event_head, head)
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        waiters, self._event_waiters = self._event_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _safety_poll(self) -> None:
        # One timer for every waiter (not a timeout per wait): bounds a missed announcement.
        self._safety_timer = asyncio.get_running_loop().call_later(
            EVENT_SAFETY_POLL_S, self._safety_poll
        )
        if self._event_waiters:
            task = asyncio.ensure_future(self._refresh_head())
            task.add_done_callback(_log_failure)

    async def _refresh_head(self) -> None:
        self._event_head = max(self._event_head, await self.store.last_event_seq())
        self._wake_waiters()

    def close(self) -> None:
        """Stop the event timer (the daemon calls this before closing the store)."""
        if self._safety_timer is not None:
            self._safety_timer.cancel()
            self._safety_timer = None


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("event head refresh failed: %r", task.exception())


@dataclass
class Housekeeping:
    interval_s: float | None = None  # None: no scheduled housekeeping runs
    runs: int = 0
    failures: int = 0
    events_pruned: int = 0
    unmatched_pruned: int = 0
    last_events_pruned: int = 0
    last_unmatched_pruned: int = 0

    def record(self, events: int, unmatched: int) -> None:
        self.runs += 1
        self.events_pruned += events
        self.unmatched_pruned += unmatched
        self.last_events_pruned = events
        self.last_unmatched_pruned = unmatched


def _event_map(seq: int, at: str, kind: str, body: Any) -> dict[str, Any]:
    fields = body if isinstance(body, dict) else {"body": body}
    return {**fields, "seq": seq, "at": at, "kind": kind}


def _hand_over(link: CarrierLink, parts: list[OutboundPart]) -> None:
    try:
        link.submit(parts)
    except RuntimeError:  # the link is stopping: the parts stay pending in the store
        log.info(
            "%s is stopping; %d parts stay pending for the next start", link.carrier, len(parts)
        )


def _encode(profile: CarrierProfile, req: SendRequest) -> EncodedText:
    if req.text is None:
        assert req.binary is not None  # the schema guarantees exactly one of the two
        coding = DataCoding.OCTET_UNSPECIFIED_2 if req.data_coding is None else req.data_coding
        return _binary(req.binary, coding)
    allowed: Sequence[int] = profile.submit.encodings
    preferred = _PREFERRED.get(req.encoding)
    if preferred is not None:
        allowed = [preferred, *(dc for dc in allowed if dc != preferred)]
    try:
        return encode_text(req.text, allowed, profile.submit.packed)
    except ValueError as exc:  # TextEncodeError: nothing the carrier allows fits
        raise ApiError(ErrorCode.E_BAD_PARAMS, f"text: {exc}") from exc


def _binary(payload: bytes, data_coding: int) -> EncodedText:
    units = len(payload) // 2 if data_coding == DataCoding.UCS2 else len(payload)
    return EncodedText(data_coding, payload, units)


def _build(
    profile: CarrierProfile,
    encoded: EncodedText,
    to: str,
    ref: int,
    source: str,
    validity_s: int | None,
    priority: int,
) -> list[SubmitSm]:
    try:
        pdus = build_submits(
            profile,
            encoded,
            to.removeprefix("+"),
            ref,
            source.removeprefix("+"),
            validity_s=validity_s,
            priority=priority,
        )
    except SegmentationError as exc:  # more than MAX_PARTS parts (the reference always fits)
        raise ApiError(ErrorCode.E_BAD_PARAMS, "text: too long for this carrier") from exc
    if source != profile.submit.source_addr:
        ton, npi = _sender_numbering(source)
        for pdu in pdus:
            pdu.source_addr_ton, pdu.source_addr_npi = ton, npi
    return pdus


def _sender_numbering(source: str) -> tuple[int, int]:
    """TON/NPI of a client-given sender: E.164 international, short code, alphanumeric."""
    if source.startswith("+"):
        return 1, 1
    if source.isdigit():
        return 3, 0
    return 5, 0
