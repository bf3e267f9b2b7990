"""A token bucket driven by the caller's clock."""

from __future__ import annotations


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``; rate 0 means unlimited.

    The bucket starts full, so the first ``burst`` requests always pass. ``now`` is any
    monotonic clock in seconds; a clock going backwards adds no tokens.
    """

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self._rate = rate
        self._burst = max(1.0, burst)
        self._tokens = self._burst
        self._stamp = now

    @property
    def rate(self) -> float:
        return self._rate

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now

    def take(self, now: float) -> bool:
        """Take one token if there is one."""
        if self._rate <= 0:
            return True
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def delay_until_token(self, now: float) -> float:
        """Seconds from ``now`` until ``take`` would succeed; 0.0 when it would now.

        Takes nothing, so a scheduler can sleep this long (or arm a timer) and then ``take``.
        """
        if self._rate <= 0:
            return 0.0
        self._refill(now)
        missing = 1.0 - self._tokens
        return 0.0 if missing <= 0 else missing / self._rate
