"""Which part goes out next, on which bind, and when: sans-I/O, driven by the caller's clock.

Ordering: a message has at most one part outstanding, and its parts go in part order; a part
that is requeued (throttled, retriable, timed out, its bind lost) goes back to the head of its
message, so a retry never overtakes or reorders the parts of one message. With ``sticky`` the
remaining parts of a message wait for the bind that carried its first part; only when that
bind is gone (``forget_bind``) may another take them.

Rate: every PDU (each part of a long message) takes one token of the carrier's bucket and,
when ``per_bind_tps`` is set, one of its bind's bucket. A throttle answer (ESME_RTHROTTLED,
ESME_RMSGQFUL) halves the carrier rate, down to ``min_rate_fraction`` of the configured one;
after ``recover_after_s`` without another throttle the rate doubles back, step by step, until
it is the configured rate again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable

from gateway.carriers.outbound import OutboundPart
from gateway.routing.token_bucket import TokenBucket


class AdaptiveRate:
    """A token bucket whose rate a throttling carrier can push down for a while."""

    def __init__(
        self,
        rate: float,
        now: float,
        *,
        min_rate_fraction: float = 1 / 16,
        recover_after_s: float = 5.0,
    ) -> None:
        self.configured = rate
        self._floor = rate * min_rate_fraction
        self._recover_after = recover_after_s
        self._last_change = now
        self.bucket = TokenBucket(rate, max(1.0, rate), now)

    @property
    def rate(self) -> float:
        return self.bucket.rate

    def slow_down(self, now: float) -> None:
        self._set(max(self._floor, self.bucket.rate / 2), now)

    def tick(self, now: float) -> None:
        if self.bucket.rate < self.configured and now - self._last_change >= self._recover_after:
            self._set(min(self.configured, self.bucket.rate * 2), now)

    def _set(self, rate: float, now: float) -> None:
        self._last_change = now
        if rate != self.bucket.rate:
            # A fresh bucket holds one token, not a burst: slowing down must take effect now.
            self.bucket = TokenBucket(rate, max(1.0, rate), now)
            self.bucket.take(now)


class Dispatcher:
    def __init__(
        self,
        tps: float,
        now: float,
        *,
        per_bind_tps: float | None = None,
        sticky: bool = False,
        recover_after_s: float = 5.0,
    ) -> None:
        self.rate = AdaptiveRate(tps, now, recover_after_s=recover_after_s)
        self._per_bind_tps = per_bind_tps
        self._bind_buckets: dict[Hashable, TokenBucket] = {}
        self._sticky = sticky
        self._parts: dict[str, deque[OutboundPart]] = {}  # queued parts by message, in order
        self._ready: deque[str] = deque()  # messages whose head part may go (none in flight)
        self._pinned: dict[str, Hashable] = {}  # message -> bind, when sticky
        self.in_flight = 0
        self._queued = 0

    def __len__(self) -> int:
        """Parts queued (not in flight)."""
        return self._queued

    def enqueue(self, parts: Iterable[OutboundPart]) -> None:
        """New parts at the tail; a message's parts must come in part order."""
        for part in parts:
            queue = self._parts.get(part.message_id)
            if queue is None:
                self._parts[part.message_id] = deque([part])
                self._ready.append(part.message_id)
            else:
                queue.append(part)
            self._queued += 1

    def adopt(self, parts: list[OutboundPart]) -> None:
        """A new message whose first part is in flight already (recorded as submitted with the
        message, see CarrierLink.reserve_direct): as if `take` had just given that part, the
        others wait behind it."""
        head, *rest = parts
        self.in_flight += 1
        if rest:
            self._parts[head.message_id] = deque(rest)
            self._queued += len(rest)

    @property
    def waiting(self) -> int:
        """Messages whose next part waits to be taken (some perhaps for a retry delay)."""
        return len(self._ready)

    def requeue(self, part: OutboundPart, not_before: float = 0.0) -> None:
        """An in-flight part back at the head of its message and of the queue."""
        self.in_flight -= 1
        self._queued += 1
        part.not_before = not_before
        queue = self._parts.setdefault(part.message_id, deque())
        queue.appendleft(part)
        self._ready.appendleft(part.message_id)

    def requeue_all(self, parts: list[OutboundPart], not_before: float = 0.0) -> None:
        """`requeue` for several in-flight parts, which keep their order at the head."""
        for part in reversed(parts):  # each requeue goes in front of the one before
            self.requeue(part, not_before)

    def done(self, part: OutboundPart) -> None:
        """An in-flight part reached a final answer; its message's next part may go."""
        self.in_flight -= 1
        queue = self._parts.get(part.message_id)
        if queue:
            self._ready.appendleft(part.message_id)  # finish started messages first
        else:
            self._parts.pop(part.message_id, None)
            self._pinned.pop(part.message_id, None)

    def drop_message(self, message_id: str) -> list[OutboundPart]:
        """Remove a message's queued parts (after a permanent failure); returns them."""
        self._pinned.pop(message_id, None)
        if message_id in self._ready:
            self._ready.remove(message_id)
        dropped = list(self._parts.pop(message_id, ()))
        self._queued -= len(dropped)
        return dropped

    def take_untouched(self) -> list[list[OutboundPart]]:
        """Remove and return, in queue order, each queued message none of whose parts has gone
        out: its first part at the head, never attempted, the message not pinned to a bind. A
        failover may send those elsewhere without any risk of a duplicate."""
        untouched = []
        for message_id in list(self._ready):
            queue = self._parts.get(message_id)
            if not queue or queue[0].part_no != 1 or message_id in self._pinned:
                continue
            if any(part.attempts for part in queue):
                continue
            untouched.append(self.drop_message(message_id))
        return untouched

    def forget_bind(self, bind: Hashable) -> None:
        """The bind is gone: its pinned messages may move to another bind."""
        self._bind_buckets.pop(bind, None)
        for message_id in [m for m, b in self._pinned.items() if b == bind]:
            del self._pinned[message_id]

    def take(self, bind: Hashable | None, now: float, *, rated: bool = True) -> OutboundPart | None:
        """The next part for ``bind`` if one is due and the rate allows it (tokens are taken).

        ``rated=False`` selects the part without looking at the rate or taking a token, and
        ``bind`` None for whichever bind will send it (pins are then left to `pin`): the caller
        `spend`s the tokens when the part actually goes out."""
        bind_bucket = None
        if rated:
            self.rate.tick(now)
            if self.rate.bucket.delay_until_token(now) > 0:
                return None
            bind_bucket = self._bind_bucket(bind, now)
            if bind_bucket is not None and bind_bucket.delay_until_token(now) > 0:
                return None
        if not self._ready:
            return None
        for index, message_id in enumerate(self._ready):
            pinned = self._pinned.get(message_id)
            if pinned is not None and bind is not None and pinned != bind:
                continue
            head = self._parts[message_id][0]
            if head.not_before > now:
                continue
            del self._ready[index]
            self._parts[message_id].popleft()
            if self._sticky and bind is not None:
                self._pinned[message_id] = bind
            if rated:
                self.rate.bucket.take(now)
                if bind_bucket is not None:
                    bind_bucket.take(now)
            self.in_flight += 1
            self._queued -= 1
            return head
        return None

    def pinned_to(self, message_id: str) -> Hashable | None:
        """The bind this message's parts must go on (sticky binds), if any yet."""
        return self._pinned.get(message_id) if self._pinned else None

    def pin(self, message_id: str, bind: Hashable) -> None:
        """A part of this message went out on ``bind``: with sticky binds, so will the rest."""
        if self._sticky:
            self._pinned[message_id] = bind

    def spend(self, bind: Hashable, now: float) -> float:
        """Take the tokens of one PDU on ``bind`` (the carrier's, and the bind's own when set)
        if the rate allows it now and return 0.0; else take nothing and return the seconds
        until it will."""
        self.rate.tick(now)
        wait = self.rate.bucket.delay_until_token(now)
        bind_bucket = self._bind_bucket(bind, now)
        if bind_bucket is not None:
            wait = max(wait, bind_bucket.delay_until_token(now))
        if wait > 0:
            return wait
        self.rate.bucket.take(now)
        if bind_bucket is not None:
            bind_bucket.take(now)
        return 0.0

    def next_deadline(self, bind: Hashable | None, now: float) -> float | None:
        """When ``take`` may next give ``bind`` a part, for lack of tokens or a retry delay;
        None when no queued part may go on that bind (new events will tell). With ``bind``
        None, when ``take(None, now, rated=False)`` may: only retry delays count."""
        heads = [
            self._parts[m][0].not_before
            for m in self._ready
            if bind is None or self._pinned.get(m, bind) == bind
        ]
        if not heads:
            return None
        if bind is None:
            return max(min(heads), now)
        waits = [self.rate.bucket.delay_until_token(now)]
        bucket = None if bind is None else self._bind_buckets.get(bind)
        if bucket is not None:
            waits.append(bucket.delay_until_token(now))
        return now + max(max(waits), min(heads) - now, 0.0)

    def drain(self) -> list[OutboundPart]:
        """Every queued part, in queue order, removed from the dispatcher."""
        parts = [p for m in self._ready for p in self._parts[m]]
        seen = set(self._ready)
        parts += [p for m, q in self._parts.items() if m not in seen for p in q]
        self._parts.clear()
        self._ready.clear()
        self._pinned.clear()
        self._queued = 0
        return parts

    def _bind_bucket(self, bind: Hashable, now: float) -> TokenBucket | None:
        if self._per_bind_tps is None:
            return None
        bucket = self._bind_buckets.get(bind)
        if bucket is None:
            rate = self._per_bind_tps
            bucket = self._bind_buckets[bind] = TokenBucket(rate, max(1.0, rate), now)
        return bucket
