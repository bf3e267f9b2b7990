"""A count of operations in progress that can be awaited until it is back to zero."""

from __future__ import annotations

import asyncio


class InProgress:
    """``started()`` / ``finished()`` around each operation; ``await idle()`` returns once
    every started one has finished (at once when none is in progress)."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def started(self) -> None:
        if self.count == 0:
            self._idle.clear()
        self.count += 1

    def finished(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def idle(self) -> None:
        await self._idle.wait()
