"""Reassembly of incoming concatenated short messages, without I/O or clocks.

The caller passes the current time (from a monotonic clock) into every call and arms its own
timer with next_deadline(). Payloads are joined as octets, so packed GSM parts must be unpacked
(dropping their fill bits) before they are added.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import StrEnum

MAX_PARTS = 255
_IEI_CONCAT_8 = 0x00
_IEI_CONCAT_16 = 0x08


class UdhError(ValueError):
    """A user data header whose length fields do not add up."""


class ReassemblyError(ValueError):
    """Concatenation numbers that cannot describe a part (total or sequence out of range)."""


@dataclass(frozen=True)
class ConcatInfo:
    reference: int
    total: int
    sequence: int
    reference_bits: int  # 8 or 16: the two reference spaces are distinct


def parse_udh(short_message: bytes) -> tuple[ConcatInfo | None, bytes]:
    """Split a short_message sent with UDHI set into its concatenation data and payload.

    Information elements other than concatenation (IEI 0x00 and 0x08) are skipped. As TS 23.040
    9.2.3.24 requires, a concatenation element with a zero total, a zero sequence or a sequence
    above the total is ignored, and of several the last valid one counts. A header that
    overruns the message or an element that overruns the header raises UdhError, as does a
    concatenation element of the wrong length.
    """
    if not short_message:
        raise UdhError("empty short_message has no user data header")
    end = 1 + short_message[0]
    if end > len(short_message):
        raise UdhError(f"header length {short_message[0]} overruns {len(short_message)} octets")
    concat = None
    position = 1
    while position < end:
        if position + 2 > end:
            raise UdhError(f"truncated information element at octet {position}")
        iei, length = short_message[position], short_message[position + 1]
        if position + 2 + length > end:
            raise UdhError(f"information element 0x{iei:02X} overruns the header")
        if iei in (_IEI_CONCAT_8, _IEI_CONCAT_16):
            data = short_message[position + 2 : position + 2 + length]
            concat = _concat_element(iei, data) or concat
        position += 2 + length
    return concat, short_message[end:]


def _concat_element(iei: int, data: bytes) -> ConcatInfo | None:
    expected = 3 if iei == _IEI_CONCAT_8 else 4
    if len(data) != expected:
        raise UdhError(f"concatenation element 0x{iei:02X} has {len(data)} octets, not {expected}")
    reference = int.from_bytes(data[:-2], "big")
    total, sequence = data[-2], data[-1]
    if total == 0 or not 1 <= sequence <= total:
        return None
    return ConcatInfo(reference, total, sequence, 8 * (expected - 2))


class ExpiryReason(StrEnum):
    TIMEOUT = "timeout"  # not complete within the timeout
    EVICTED = "evicted"  # oldest pending message when max_pending was reached
    SUPERSEDED = "superseded"  # same key and reference arrived with a different total


@dataclass(frozen=True)
class ExpiredMessage:
    """A concatenated message given up on, with the parts that did arrive."""

    key: Hashable
    reference: int
    total: int
    parts: dict[int, bytes]
    missing: tuple[int, ...]
    reason: ExpiryReason


@dataclass
class _Pending:
    total: int
    deadline: float
    parts: dict[int, bytes] = field(default_factory=dict)


class Reassembler:
    """Collects parts until a message is complete; nothing is dropped without a report.

    A message is identified by the caller's key (e.g. (source, destination), plus the
    reference width when it mixes 8- and 16-bit references) and its reference. It must be
    complete within timeout seconds of its first part; after that expire() reports it. When
    max_pending messages are pending, a part of a new message evicts the oldest pending one,
    and a part whose total disagrees with the pending message of the same key and reference
    supersedes it: both kinds are reported by the next expire() call, and next_deadline() is
    then the time they were dropped, so a caller's timer fires at once. Parts already received
    are ignored and counted as duplicates.
    """

    def __init__(self, timeout: float, max_pending: int) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, not {max_pending}")
        self._timeout = timeout
        self._max_pending = max_pending
        # Insertion order is deadline order because every deadline is first arrival + timeout.
        self._pending: dict[tuple[Hashable, int], _Pending] = {}
        self._dropped: list[ExpiredMessage] = []
        self._dropped_at = 0.0
        self.completed = 0
        self.expired = 0
        self.evicted = 0
        self.superseded = 0
        self.duplicates = 0

    def __len__(self) -> int:
        """Messages pending completion."""
        return len(self._pending)

    def add(
        self, key: Hashable, ref: int, total: int, seq: int, payload: bytes, now: float
    ) -> bytes | None:
        """Add one part; the whole payload, parts joined in sequence order, once complete."""
        if not 1 <= total <= MAX_PARTS or not 1 <= seq <= total:
            raise ReassemblyError(f"part {seq} of {total} is not a valid concatenation part")
        if total == 1:
            self.completed += 1
            return payload
        slot = (key, ref)
        entry = self._pending.get(slot)
        if entry is not None and entry.total != total:
            self._drop(slot, ExpiryReason.SUPERSEDED, now)
            self.superseded += 1
            entry = None
        if entry is None:
            if len(self._pending) >= self._max_pending:
                self._drop(next(iter(self._pending)), ExpiryReason.EVICTED, now)
                self.evicted += 1
            entry = self._pending[slot] = _Pending(total, now + self._timeout)
        if seq in entry.parts:
            self.duplicates += 1
            return None
        entry.parts[seq] = payload
        if len(entry.parts) < total:
            return None
        del self._pending[slot]
        self.completed += 1
        return b"".join(entry.parts[number] for number in range(1, total + 1))

    def expire(self, now: float) -> list[ExpiredMessage]:
        """Messages evicted or superseded since the last call, then those timed out by now."""
        reports, self._dropped = self._dropped, []
        while self._pending:
            slot, entry = next(iter(self._pending.items()))
            if entry.deadline > now:
                break
            reports.append(self._report(slot, entry, ExpiryReason.TIMEOUT))
            del self._pending[slot]
            self.expired += 1
        return reports

    def next_deadline(self) -> float | None:
        """When expire() next has something to report; None when nothing is pending."""
        deadlines: list[float] = []
        if self._pending:
            deadlines.append(next(iter(self._pending.values())).deadline)
        if self._dropped:
            deadlines.append(self._dropped_at)
        return min(deadlines, default=None)

    def _drop(self, slot: tuple[Hashable, int], reason: ExpiryReason, now: float) -> None:
        if not self._dropped:
            self._dropped_at = now
        self._dropped.append(self._report(slot, self._pending.pop(slot), reason))

    @staticmethod
    def _report(
        slot: tuple[Hashable, int], entry: _Pending, reason: ExpiryReason
    ) -> ExpiredMessage:
        missing = tuple(n for n in range(1, entry.total + 1) if n not in entry.parts)
        return ExpiredMessage(slot[0], slot[1], entry.total, dict(entry.parts), missing, reason)
