"""The asyncio ESME adapter against the SMSC simulator on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gateway.smpp.constants import CommandStatus as S
from gateway.smpp.esme import BindError, EsmeConnection, connect_esme
from gateway.smpp.pdu import SubmitSm
from gateway.smpp.session import (
    BindFailed,
    DeliverReceived,
    Event,
    PeerDead,
    SessionConfig,
    SubmitResponse,
    SubmitTimeout,
    UnbindReason,
    Unbound,
)
from gateway.smsc_sim import SimConfig, SmscSimulator

Runner = Callable[[Callable[[], Awaitable[None]]], None]
SYSTEM_ID, PASSWORD = "smppclient1", "password"
pytestmark = pytest.mark.timeout(20)


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Callable[[], Awaitable[None]]], None]:
    """Runs a test coroutine, bounded, on the stdlib loop and on uvloop."""
    factory = None
    if request.param == "uvloop":
        factory = pytest.importorskip("uvloop").new_event_loop

    def runner(test: Callable[[], Awaitable[None]]) -> None:
        async def bounded() -> None:
            async with asyncio.timeout(10.0):
                await test()

        with asyncio.Runner(loop_factory=factory) as loop_runner:
            loop_runner.run(bounded())

    return runner


def sim_config(**changes: Any) -> SimConfig:
    return SimConfig(port=0, seed=1, receipt_delay=0.01).replace(**changes)


def sms(n: int) -> SubmitSm:
    return SubmitSm(
        source_addr="12345",
        destination_addr=f"4477009{n:05d}",
        registered_delivery=1,
        short_message=f"message {n}".encode(),
    )


class Recorder:
    """on_event for the tests: records events, acks deliveries, keeps the window full."""

    def __init__(self, backlog: int = 0) -> None:
        self.events: list[Event] = []
        self.backlog = deque(range(backlog))
        self.conn: EsmeConnection | None = None
        self.max_in_flight = 0
        self.changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, DeliverReceived):
            assert self.conn is not None
            self.conn.ack(event.pdu)
        self.fill()
        self.changed.set()

    def fill(self) -> None:
        conn = self.conn
        while (
            conn is not None and self.backlog and conn.submit(sms(self.backlog[0]), self.backlog[0])
        ):
            self.backlog.popleft()
            self.max_in_flight = max(self.max_in_flight, conn.session.in_flight)

    def of(self, cls: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            self.changed.clear()
            await self.changed.wait()


async def connect(sim: SmscSimulator, recorder: Recorder, **changes: Any) -> EsmeConnection:
    config = SessionConfig(SYSTEM_ID, PASSWORD, window_size=4, **changes)
    conn = await connect_esme(sim.host, sim.port, config, recorder)
    recorder.conn = conn
    return conn


def test_bind_submit_batch_with_a_window_and_ack_receipts(run: Runner) -> None:
    async def test() -> None:
        async with SmscSimulator(sim_config(enquire_link_interval=0.05)) as sim:
            recorder = Recorder(backlog=30)
            conn = await connect(sim, recorder, enquire_link_interval=0.05)
            assert await conn.wait_bound() == "SMSCSIM"
            recorder.fill()
            await recorder.wait_for(lambda: len(recorder.of(DeliverReceived)) == 30)
            responses = recorder.of(SubmitResponse)
            assert sorted(r.ref for r in responses) == list(range(30))
            assert all(r.pdu.command_status == S.ESME_ROK and r.pdu.message_id for r in responses)
            assert recorder.max_in_flight == 4
            await sim.wait_for(lambda: sim.counters.deliver_sm_acked == 30)
            # both sides' keep-alives ran and were answered
            await sim.wait_for(lambda: sim.counters.enquire_links_received > 0)
            await sim.wait_for(lambda: sim.counters.enquire_links_sent > 0)
            assert conn.session.enquire_links_received > 0
            await conn.unbind(timeout=2.0)
            assert recorder.events[-1] == Unbound(UnbindReason.LOCAL_UNBIND)
            assert conn.session.protocol_errors == 0

    run(test)


def test_wrong_password_is_bind_failed(run: Runner) -> None:
    async def test() -> None:
        async with SmscSimulator(sim_config()) as sim:
            recorder = Recorder()
            config = SessionConfig(SYSTEM_ID, "wrong")
            conn = await connect_esme(sim.host, sim.port, config, recorder)
            with pytest.raises(BindError) as failed:
                await conn.wait_bound()
            assert failed.value.event == BindFailed(S.ESME_RBINDFAIL)
            assert recorder.events == [BindFailed(S.ESME_RBINDFAIL)]
            await conn.wait_closed(timeout=2.0)

    run(test)


def test_simulator_stopped_reports_outstanding_refs(run: Runner) -> None:
    async def test() -> None:
        async with SmscSimulator(sim_config(latency_ms=5000)) as sim:
            recorder = Recorder(backlog=3)
            conn = await connect(sim, recorder)
            # the bind response is 5 s late: stop before it comes; nothing was submitted
            await sim.wait_for(lambda: sim.counters.binds_ok == 1)
            await sim.stop()
            await conn.wait_closed(timeout=2.0)
            assert recorder.events == [Unbound(UnbindReason.CONNECTION_LOST)]
            with pytest.raises(BindError):
                await conn.wait_bound()

        async with SmscSimulator(sim_config()) as sim:
            recorder = Recorder()
            conn = await connect(sim, recorder)
            await conn.wait_bound()
            sim.config.latency_ms = 5000  # from now on the answers are late
            for ref in range(3):
                assert conn.submit(sms(ref), ref)
            await sim.wait_for(lambda: sim.counters.submit_sm == 3)
            await sim.stop()
            await conn.wait_closed(timeout=2.0)
            assert recorder.events[-1] == Unbound(UnbindReason.CONNECTION_LOST, (0, 1, 2))
            assert not conn.submit(sms(3), 3)

    run(test)


def test_silent_peer_is_dead(run: Runner) -> None:
    async def test() -> None:
        async with SmscSimulator(sim_config()) as sim:
            recorder = Recorder()
            conn = await connect(
                sim, recorder, enquire_link_interval=0.05, enquire_link_timeout=0.1
            )
            await conn.wait_bound()
            sim.config.latency_ms = 5000  # the enquire_link_resp comes far too late
            await conn.wait_closed(timeout=3.0)
            assert recorder.events[-2:] == [PeerDead(), Unbound(UnbindReason.PEER_DEAD)]

    run(test)


def test_a_submit_times_out_on_its_own_deadline_not_the_keep_alives(run: Runner) -> None:
    """The only timer armed when a submit goes out may be the enquire_link's, far later: the
    submit must bring its own response deadline forward."""

    async def test() -> None:
        async with SmscSimulator(sim_config(enquire_link_interval=0)) as sim:  # none
            recorder = Recorder()
            conn = await connect(sim, recorder, enquire_link_interval=60.0, response_timeout=0.2)
            await conn.wait_bound()
            await asyncio.sleep(0.3)  # the bind's response deadline passes: the minute is armed
            assert (
                conn._timer_at is not None
                and conn._timer_at > asyncio.get_running_loop().time() + 30
            )
            sim.config.latency_ms = 5000  # the submit_sm_resp comes far too late
            loop = asyncio.get_running_loop()
            sent = loop.time()
            assert conn.submit(sms(1), 1)
            await recorder.wait_for(lambda: bool(recorder.of(SubmitTimeout)))
            assert recorder.of(SubmitTimeout) == [SubmitTimeout(1)]
            assert loop.time() - sent < 5.0  # well before the keep-alive's minute
            conn.close()

    run(test)
