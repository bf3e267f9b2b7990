"""running_loop(): asyncio.get_running_loop() without its per-call getpid()."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest
import uvloop

from gateway import running_loop as module
from gateway.running_loop import running_loop


def test_it_is_the_running_loop_whichever_loop_and_thread() -> None:
    async def current() -> asyncio.AbstractEventLoop:
        assert running_loop() is asyncio.get_running_loop()
        assert running_loop() is asyncio.get_running_loop()  # from memory this time
        return asyncio.get_running_loop()

    first = asyncio.run(current())
    second = asyncio.run(current())  # a new loop in the same thread: not the stopped one
    third = uvloop.run(current())
    assert len({id(first), id(second), id(third)}) == 3

    seen: list[asyncio.AbstractEventLoop] = []

    async def in_thread() -> None:
        seen.append(running_loop())
        assert seen[-1] is asyncio.get_running_loop()

    async def main() -> None:
        mine = running_loop()
        worker = threading.Thread(target=lambda: asyncio.run(in_thread()))
        worker.start()
        await asyncio.to_thread(worker.join)
        assert seen and seen[0] is not mine
        assert running_loop() is mine  # the other thread's loop is not taken for ours

    asyncio.run(main())


def test_no_running_loop_is_an_error_as_in_asyncio() -> None:
    with pytest.raises(RuntimeError):
        running_loop()

    async def later() -> None:
        running_loop()

    asyncio.run(later())
    with pytest.raises(RuntimeError):  # that loop is closed now
        running_loop()


def test_a_forked_child_forgets_the_parents_loop() -> None:
    async def main() -> None:
        running_loop()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report whether the memory was cleared, then leave at once
            os.write(write, b"1" if module._last == (0, None) else b"0")
            os._exit(0)
        os.close(write)
        assert os.read(read, 1) == b"1"
        os.close(read)
        os.waitpid(pid, 0)

    asyncio.run(main())
