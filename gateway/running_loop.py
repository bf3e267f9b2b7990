"""`running_loop()`: `asyncio.get_running_loop()` without a system call on every call.

CPython 3.11's `get_running_loop` calls getpid() each time (to notice a fork), and glibc no
longer caches the pid: one syscall per call, several per message on the hot paths (each store
write, each sms.send, each dispatch kick). Here the thread's loop is remembered and reused
while it is still running in that thread; a fork clears the memory, which is what the pid check
is for.
"""

from __future__ import annotations

import asyncio
import os
import threading

_get_ident = threading.get_ident
_last: tuple[int, asyncio.AbstractEventLoop | None] = (0, None)


def running_loop() -> asyncio.AbstractEventLoop:
    """The event loop running in this thread; RuntimeError when none is (as asyncio's)."""
    global _last
    ident, loop = _last
    if loop is not None and ident == _get_ident() and loop.is_running():
        return loop
    loop = asyncio.get_running_loop()
    _last = (_get_ident(), loop)
    return loop


def _forget() -> None:
    global _last
    _last = (0, None)


os.register_at_fork(after_in_child=_forget)
