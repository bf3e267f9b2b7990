"""deliver_sm waiting to be sent: scheduled until due, then ready until a receiver bind has room.

Bounded per system_id: add() refuses a delivery when that system_id already has ``limit``
waiting (scheduled or ready), and the caller counts the drop.
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass

from gateway.smpp.pdu import DeliverSm

RECEIPT = "receipt"
MO = "mo"


@dataclass(slots=True, eq=False)
class Delivery:
    system_id: str
    pdu: DeliverSm
    due: float
    kind: str  # RECEIPT or MO
    delivered: bool = True  # for receipts: DELIVRD (True) or UNDELIV
    cancelled: bool = False  # cancel_sm: skipped when it falls due
    sent: bool = False  # sent at least once (a requeued delivery is sent again)


class DeliveryQueue:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._order = itertools.count()
        self._scheduled: list[tuple[float, int, Delivery]] = []
        self._ready: dict[str, deque[Delivery]] = defaultdict(deque)
        self._pending: dict[str, int] = defaultdict(int)

    def pending(self, system_id: str) -> int:
        return self._pending[system_id]

    def add(self, delivery: Delivery) -> bool:
        if self._pending[delivery.system_id] >= self._limit:
            return False
        self._pending[delivery.system_id] += 1
        heapq.heappush(self._scheduled, (delivery.due, next(self._order), delivery))
        return True

    def requeue(self, delivery: Delivery) -> None:
        """Put back a delivery that was sent but never acknowledged, ahead of the others."""
        self._pending[delivery.system_id] += 1
        self._ready[delivery.system_id].appendleft(delivery)

    def release(self, now: float) -> None:
        """Move the deliveries due by now to their system_id's ready line."""
        scheduled = self._scheduled
        while scheduled and scheduled[0][0] <= now:
            delivery = heapq.heappop(scheduled)[2]
            if delivery.cancelled:
                self._pending[delivery.system_id] -= 1
            else:
                self._ready[delivery.system_id].append(delivery)

    def ready_system_ids(self) -> Iterator[str]:
        return iter([sid for sid, line in self._ready.items() if line])

    def peek(self, system_id: str) -> Delivery | None:
        line = self._ready.get(system_id)
        return line[0] if line else None

    def pop(self, system_id: str) -> Delivery:
        self._pending[system_id] -= 1
        return self._ready[system_id].popleft()

    def next_due(self) -> float | None:
        return self._scheduled[0][0] if self._scheduled else None
