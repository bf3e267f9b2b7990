"""A simulator on its own event loop in a background thread, for blocking clients (smpplib,
load generators) and for tests that are not themselves async."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from gateway.ops.runner import run
from gateway.smpp.pdu import DeliverSm

from .config import SimConfig
from .core import BindRecord
from .counters import Counters
from .server import SmscSimulator

T = TypeVar("T")


class SimulatorThread:
    """``with SimulatorThread(SimConfig(port=0)) as sim:`` starts it and stops it again.

    counters and submitted are the live objects of the simulator's loop: read them, do not
    mutate them, from other threads.
    """

    def __init__(self, config: SimConfig | None = None, **changes: Any) -> None:
        self.sim = SmscSimulator(config, **changes)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="smsc-sim", daemon=True)

    def start(self, timeout: float = 5.0) -> SimulatorThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the simulator did not start")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread.ident is None:  # never started
            return
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return self.sim.host

    @property
    def port(self) -> int:
        return self.sim.port

    @property
    def counters(self) -> Counters:
        return self.sim.counters

    @property
    def submitted(self) -> list[Any]:
        return self.call(self._snapshot)

    @property
    def binds(self) -> list[BindRecord]:
        return self.call(self._binds)

    def call(self, coroutine: Callable[[], Coroutine[Any, Any, T]], timeout: float = 10.0) -> T:
        """Run coroutine() on the simulator's loop and return its result."""
        assert self._loop is not None
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine(), self._loop)
        return future.result(timeout)

    def inject_mo(self, text: str, **options: Any) -> list[DeliverSm]:
        return self.call(lambda: self.sim.inject_mo(text, **options))

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        self.call(lambda: self.sim.wait_for(predicate, timeout), timeout + 1.0)

    async def _snapshot(self) -> list[Any]:
        return list(self.sim.submitted)

    async def _binds(self) -> list[BindRecord]:
        return list(self.sim.binds)

    def _run(self) -> None:
        try:
            run(self._main())
        except BaseException as exc:  # reported to start() if it happens before ready
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await self.sim.start()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.sim.stop()
