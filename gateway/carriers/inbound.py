"""deliver_sm from a carrier: receipts to the store, MO messages reassembled into events.

Every deliver_sm is acked only after what it carries is durably stored. The parts of a
multi-part MO are held unacked until the whole message is stored (or given up on by the
reassembler's timeout and stored as an incomplete event): the carrier redelivers whatever was
never acked, and a redelivered part is held with the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.carriers.in_progress import InProgress
from gateway.smpp.constants import EsmClass, Tag
from gateway.smpp.pdu import Pdu
from gateway.smpp.reassembly import (
    ExpiredMessage,
    Reassembler,
    ReassemblyError,
    UdhError,
    parse_udh,
)
from gateway.smpp.receipts import (
    MessageIdError,
    ReceiptParseError,
    normalise_message_id,
    receipt_summary,
)
from gateway.smpp.text import TextDecodeError, decode_text
from gateway.store.sqlite_store import SqliteStore, StoreError

log = logging.getLogger(__name__)

# a plain int: `int & IntFlag` runs enum's Python-level __and__ and builds a flag per call
_RECEIPT_BITS = int(EsmClass.SMSC_DELIVERY_RECEIPT | EsmClass.INTERMEDIATE_NOTIFICATION)


class Acker(Protocol):
    def ack(self, pdu: Pdu, status: int = 0) -> bool: ...


@dataclass(frozen=True, slots=True)
class MoPart:
    key: Hashable
    reference: int
    total: int
    sequence: int
    payload: bytes


def is_receipt(pdu: Any) -> bool:
    return bool(pdu.esm_class & _RECEIPT_BITS)


def mo_part(pdu: Any) -> MoPart:
    """Concatenation data from the UDH or the SAR TLVs; a whole message is part 1 of 1."""
    tlvs = pdu.tlvs or {}
    payload = tlvs.get(Tag.MESSAGE_PAYLOAD) or pdu.short_message
    key: tuple[Any, ...] = (pdu.source_addr, pdu.destination_addr)
    if pdu.esm_class & EsmClass.UDHI:
        concat, payload = parse_udh(payload)
        if concat is not None:
            key += (concat.reference_bits,)
            return MoPart(key, concat.reference, concat.total, concat.sequence, payload)
    if Tag.SAR_MSG_REF_NUM in tlvs:
        return MoPart(
            (*key, "sar"),
            int(tlvs[Tag.SAR_MSG_REF_NUM]),
            int(tlvs.get(Tag.SAR_TOTAL_SEGMENTS, 1)),
            int(tlvs.get(Tag.SAR_SEGMENT_SEQNUM, 1)),
            payload,
        )
    return MoPart(key, 0, 1, 1, payload)


def _text(data_coding: int, payload: bytes) -> str | None:
    try:
        return decode_text(data_coding, payload)
    except TextDecodeError:
        return None


class InboundHandler:
    def __init__(
        self,
        carrier: str,
        id_format: str,
        store: SqliteStore,
        clock: Callable[[], float],
        *,
        reassembly_timeout_s: float = 120.0,
        max_pending: int = 1000,
        unmatched_ttl_s: float | None = None,
        queue_answer: Callable[[tuple[Any, ...], Any], None],
        on_receipt: Callable[[str, str], None] | None = None,
    ) -> None:
        self.carrier = carrier
        # told each readable receipt's (normalised id, state) as it arrives: the link's health
        self._on_receipt = on_receipt
        # The link's queue for its answers (CarrierLink.queue_answer): a receipt is recorded in
        # the same write as the responses before it, in their order.
        self._queue_answer = queue_answer
        self._unmatched_ttl_s = unmatched_ttl_s  # None: the store's default
        self._id_format = id_format
        self._store = store
        self._clock = clock
        self.reassembler = Reassembler(reassembly_timeout_s, max_pending)
        self._held: dict[tuple[Hashable, int], list[tuple[Acker, Pdu]]] = {}
        self._first: dict[tuple[Hashable, int], Pdu] = {}
        self.receipts = 0
        self.receipts_unmatched = 0
        self.receipts_invalid = 0
        self.mo_messages = 0
        self.mo_incomplete = 0
        self.mo_invalid = 0
        self.store_errors = 0
        self._in_progress = InProgress()  # deliver_sm taken, not yet stored (or given up on)

    def handle(self, conn: Acker, pdu: Any) -> None:
        """Store what the deliver_sm carries, then ack it; `wait_idle()` returns once every
        deliver_sm handed in is done. One the store could not take is left unacked (the
        carrier redelivers it), counted and logged, never raised."""
        self._in_progress.started()
        if is_receipt(pdu):
            self._receipt(conn, pdu)
        else:
            task = asyncio.ensure_future(self._mo_guarded(conn, pdu))
            task.add_done_callback(lambda _task: self._in_progress.finished())

    async def wait_idle(self) -> None:
        await self._in_progress.idle()

    def _receipt(self, conn: Acker, pdu: Any) -> None:
        # The hot path: no task and no future, one `then` callback on the store write.
        try:
            raw_id, state, stat_text, error_code = receipt_summary(pdu.short_message, pdu.tlvs)
            norm = normalise_message_id(raw_id, self._id_format)
        except (ReceiptParseError, MessageIdError) as exc:
            self.receipts_invalid += 1
            log.warning("%s: unusable receipt acked and dropped: %s", self.carrier, exc)
            conn.ack(pdu)
            self._in_progress.finished()
            return

        def stored_then_ack(error: BaseException | None, match: Any) -> None:
            if error is not None:
                self._not_stored(error)
            else:
                self.receipts += 1
                if match is None:
                    self.receipts_unmatched += 1
                conn.ack(pdu)
            self._in_progress.finished()

        if self._on_receipt is not None:
            self._on_receipt(norm, state)
        detail = {"stat": stat_text, "carrier_message_id_raw": raw_id}
        answer = ("receipt", norm, state, error_code, detail, self._unmatched_ttl_s)
        self._queue_answer(answer, stored_then_ack)

    def _not_stored(self, exc: BaseException) -> None:
        # Not acked: the carrier redelivers it later.
        self.store_errors += 1
        log.warning("%s: deliver_sm not stored (%s); left unacked", self.carrier, exc)

    async def _mo_guarded(self, conn: Acker, pdu: Any) -> None:
        try:
            await self._mo(conn, pdu)
        except StoreError as exc:
            self._not_stored(exc)

    async def _mo(self, conn: Acker, pdu: Any) -> None:
        try:
            part = mo_part(pdu)
            whole = self.reassembler.add(
                part.key, part.reference, part.total, part.sequence, part.payload, self._clock()
            )
        except (UdhError, ReassemblyError) as exc:
            self.mo_invalid += 1
            log.warning("%s: undecodable MO acked and dropped: %s", self.carrier, exc)
            conn.ack(pdu)
            return
        slot = (part.key, part.reference)
        if whole is None:
            self._held.setdefault(slot, []).append((conn, pdu))
            self._first.setdefault(slot, pdu)
            return
        held = [*self._held.pop(slot, []), (conn, pdu)]
        first = self._first.pop(slot, pdu)
        await self._store.append_event("sms.inbound", self._body(first, whole, part.total))
        self.mo_messages += 1
        for acker, held_pdu in held:
            acker.ack(held_pdu)

    async def expire(self) -> None:
        """Store what the reassembler gave up on (as sms.inbound_incomplete) and ack it."""
        for gone in self.reassembler.expire(self._clock()):
            await self._incomplete(gone)

    def next_deadline(self) -> float | None:
        return self.reassembler.next_deadline()

    async def _incomplete(self, gone: ExpiredMessage) -> None:
        slot = (gone.key, gone.reference)
        first = self._first.pop(slot, None)
        body: dict[str, Any] = {
            "carrier": self.carrier,
            "reason": gone.reason.value,
            "total": gone.total,
            "missing": list(gone.missing),
            "parts_hex": {str(n): p.hex() for n, p in sorted(gone.parts.items())},
        }
        if first is not None:
            body |= {"source_addr": first.source_addr, "dest_addr": first.destination_addr}
        await self._store.append_event("sms.inbound_incomplete", body)
        self.mo_incomplete += 1
        for acker, pdu in self._held.pop(slot, []):
            acker.ack(pdu)

    def _body(self, first: Any, payload: bytes, parts: int) -> dict[str, Any]:
        return {
            "carrier": self.carrier,
            "source_addr": first.source_addr,
            "dest_addr": first.destination_addr,
            "data_coding": first.data_coding,
            "text": _text(first.data_coding, payload),
            "payload_hex": payload.hex(),
            "parts": parts,
        }
