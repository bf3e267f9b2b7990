"""Time-ordered message ids: UUIDv7 (RFC 9562), as the canonical 36-character lower-case string.

The 36-character form is what clients see and what the store keeps: it sorts lexically in
creation order and every tool reads it. Layout (RFC 9562 section 5.7, counter per section 6.2
method 1): 48-bit Unix milliseconds, version 7, a 12-bit counter in rand_a, variant 10 and 62
random bits. The counter is seeded randomly (top bit clear, to leave room) on each new
millisecond and incremented within one, so ids from one process are strictly increasing; on
counter overflow, or when the wall clock steps back, the timestamp is carried forward instead.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any

_COUNTER_MAX = 0xFFF
_lock = threading.Lock()
_last_ms = -1
_counter = 0
# os.urandom read in blocks: one getrandom() call per 400 ids or so instead of two per id
_RANDOM_BLOCK = 4096
_random = b""
_random_at = 0


def _forget_random() -> None:
    global _random, _random_at
    _random, _random_at = b"", 0  # a forked child must not reuse its parent's bytes


os.register_at_fork(after_in_child=_forget_random)


def _random_bytes(n: int) -> bytes:
    """`n` bytes from the kernel's CSPRNG, read ahead in blocks (call with _lock held)."""
    global _random, _random_at
    if _random_at + n > len(_random):
        _random, _random_at = os.urandom(_RANDOM_BLOCK), 0
    start, _random_at = _random_at, _random_at + n
    return _random[start:_random_at]


def uuid7(now_ms: int | None = None) -> uuid.UUID:
    """A new UUIDv7, greater than every one made before by this process."""
    return uuid.UUID(int=_uuid7_int(now_ms))


def _next(now_ms: int | None) -> tuple[int, int, bytes]:
    """The next id's (milliseconds, counter, 8 random bytes): the state step both forms share."""
    global _last_ms, _counter
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    with _lock:
        if ms > _last_ms:
            _last_ms = ms
            _counter = int.from_bytes(_random_bytes(2), "big") & 0x7FF
        else:
            _counter += 1
            if _counter > _COUNTER_MAX:
                _last_ms += 1
                _counter = 0
        return _last_ms, _counter, _random_bytes(8)


def _uuid7_int(now_ms: int | None = None) -> int:
    ms, counter, random = _next(now_ms)
    rand_b = int.from_bytes(random, "big") & ((1 << 62) - 1)
    return (ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b


_prefix_cache: list[Any] = [-1, ""]  # [milliseconds, "tttttttt-tttt-" for them]


def new_message_id(now_ms: int | None = None) -> str:
    """A new message id: a UUIDv7 in its canonical 36-character form, the same string as
    str(uuid7()) would give for the same state, built field by field (one runs per message;
    through a 128-bit int and uuid.UUID it cost several times more)."""
    ms, counter, random = _next(now_ms)
    cache = _prefix_cache
    if cache[0] != ms:
        t = f"{ms & 0xFFFF_FFFF_FFFF:012x}"
        cache[1], cache[0] = f"{t[:8]}-{t[8:]}-", ms
    # variant 10 over the top two of the 64 random bits, as _uuid7_int masks them: the first
    # hex digit of the random bits becomes 8, 9, a or b
    h = random.hex()
    return f"{cache[1]}7{counter:03x}-{_VARIANT_DIGIT[random[0] >> 4 & 3]}{h[1:4]}-{h[4:]}"


_VARIANT_DIGIT = "89ab"


def message_id_unix_ms(message_id: str) -> int:
    """The creation time (Unix milliseconds) in a message id; ValueError if it is not a UUIDv7."""
    value = uuid.UUID(message_id)
    if value.version != 7:
        raise ValueError(f"{message_id!r} is not a UUIDv7")
    return value.int >> 80
