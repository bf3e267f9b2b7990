"""One message to a CPaaS provider, retried as its answers allow.

An answer the provider means for good (accepted, or refused with its code) ends it. 429 and
5xx are retried after the provider's Retry-After, else after an exponential backoff with full
jitter; so is a request that never left (`Unsent`). A request whose outcome is unknown
(`Unknown`: it went out, no answer came back) is sent again with the same idempotency key when
the provider takes one (`idempotent`), so it cannot be taken twice; when the provider takes
none (Twilio's Messages API), sending it again may deliver it twice, and every such resend is
counted in `possible_duplicates` (the SMPP side's at-least-once, counted the same way). The
attempts stop at `max_attempts` or when the next wait would pass `max_total_s`: the result is
then not final and the caller decides (another provider, or the queue).

`next_delay` is the policy alone (sans-I/O); `deliver` runs it with a transport, a clock and a
sleep that the caller gives (the tests pass ones that do not wait).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from gateway.cpaas.http_outcome import Accepted, HttpRequest, Outcome, Refused, RetryLater
from gateway.cpaas.http_transport import Unknown, Unsent

ReadOutcome = Callable[[int, Mapping[str, str], bytes, float], Outcome]
Send = Callable[[HttpRequest], Awaitable[tuple[int, dict[str, str], bytes]]]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_s: float = 0.5  # the first backoff's ceiling; doubled each attempt
    cap_s: float = 30.0  # no backoff longer than this (a provider's Retry-After is honoured)
    max_total_s: float = 120.0  # no attempt starts later than this after the first

    def next_delay(self, attempt: int, retry_after_s: float | None, rng: random.Random) -> float:
        """The wait before attempt `attempt + 1`, after `attempt` attempts (1 for the first)."""
        if retry_after_s is not None:
            return max(0.0, retry_after_s)
        return rng.uniform(0.0, min(self.cap_s, self.base_s * 2 ** (attempt - 1)))


@dataclass
class Delivery:
    outcome: Outcome | None  # Accepted or Refused: final; RetryLater or None: gave up
    attempts: int
    possible_duplicates: int  # resends after an unknown outcome, without idempotency
    last_error: str | None = None  # why the last attempt had no answer, when it had none

    @property
    def final(self) -> bool:
        return isinstance(self.outcome, Accepted | Refused)


async def deliver(
    send: Send,
    request: HttpRequest,
    read_outcome: ReadOutcome,
    *,
    idempotent: bool,
    policy: RetryPolicy,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
    rng: random.Random,
) -> Delivery:
    """Send `request` until the provider answers for good or the policy gives up."""
    started = clock()
    result = Delivery(None, 0, 0)
    unknown = False
    while True:
        if unknown and not idempotent:
            result.possible_duplicates += 1
        result.attempts += 1
        retry_after = None
        try:
            status, headers, body = await send(request)
        except Unsent as exc:
            result.outcome, result.last_error, unknown = None, f"not sent: {exc}", False
        except Unknown as exc:
            result.outcome, result.last_error, unknown = None, f"unknown: {exc}", True
        else:
            result.outcome = read_outcome(status, headers, body, clock())
            result.last_error, unknown = None, False
            if not isinstance(result.outcome, RetryLater):
                return result
            retry_after = result.outcome.after_s
        if result.attempts >= policy.max_attempts:
            return result
        delay = policy.next_delay(result.attempts, retry_after, rng)
        if clock() + delay - started > policy.max_total_s:
            return result
        await sleep(delay)
