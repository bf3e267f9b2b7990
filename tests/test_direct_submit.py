"""A new message's first part recorded as submitted in the write that accepts it, when the
carrier link has room for it at once (CarrierLink.reserve_direct): one write and one commit
fewer, and still never on the wire before that record is committed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.api.errors import ApiError, ErrorCode
from gateway.api.schema import SendRequest, parse_send
from gateway.carriers.dispatch import Dispatcher
from gateway.carriers.link import CarrierLink
from gateway.ops.config import Limits
from gateway.service import GatewayCore
from gateway.smsc_sim import SmscSimulator
from gateway.smsc_sim.config import SimConfig
from gateway.store.sqlite_store import SqliteStore, StoreBusy, StoreError
from tests.test_carrier_link import LONG_TEXT, _parts, all_in_state, eventually, make_profile, run
from tests.test_service import closed_port

pytestmark = pytest.mark.timeout(30)


def sms(**params: object) -> SendRequest:
    return parse_send({"to": "+447700900001", "from": "Shop", "text": "hello", **params})


class _HeldAccepts(SqliteStore):
    """Holds back the news that an accept is committed (or, with `fail`, reports it as failed)
    until `release()`."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.held: list[Callable[[], None]] = []
        self.fail = False

    def accept_many(self, *args: Any, then: Any = None, **kwargs: Any) -> Any:
        def hold(error: BaseException | None, result: Any) -> None:
            if self.fail:
                error = StoreError("injected: batch not committed")
            self.held.append(lambda: then(error, result))

        return super().accept_many(*args, then=hold, **kwargs)

    def release(self) -> None:
        held, self.held = self.held, []
        for callback in held:
            callback()


async def _ready_link(link: CarrierLink) -> None:
    await link.start()
    await link.wait_bound()
    for _ in range(3):  # the dispatch the bind kicked
        await asyncio.sleep(0)


async def _bound_core(
    tmp_path: Path, port: int, store: SqliteStore | None = None
) -> tuple[SqliteStore, CarrierLink, GatewayCore]:
    """A store (given or new), a link to the simulator on `port`, bound, and the core over them."""
    store = SqliteStore(str(tmp_path / "db.sqlite")) if store is None else store
    link = CarrierLink(make_profile(tmp_path, port), store)  # window 5: a pipeline room of 25
    core = GatewayCore(store, {"sim": link}, Limits())
    await _ready_link(link)
    return store, link, core


def test_one_write_fewer_and_not_on_the_wire_before_the_commit(tmp_path: Path) -> None:
    async def test() -> None:
        async with SmscSimulator(SimConfig(port=0)) as sim:
            store = _HeldAccepts(str(tmp_path / "db.sqlite"))
            _, link, core = await _bound_core(tmp_path, sim.port, store)
            jobs = store.jobs_committed
            reply = core.send_sms(sms(), "uid:1")
            await eventually(lambda: _true(len(store.held) == 1))
            assert store.jobs_committed == jobs + 1  # committed, the news held back
            message_id = next(iter(await _message_ids(store)))
            record = await store.get_message(message_id)
            assert record is not None and record.parts[0].state == "submitted"
            await asyncio.sleep(0.2)
            assert sim.counters.submit_sm == 0 and not reply.done()
            store.release()
            assert (await reply)["message_id"] == message_id
            await eventually(lambda: all_in_state(store, [message_id], "delivered"))
            assert sim.counters.submit_sm == 1
            assert link.counters.recorded_with_accept == 1
            # accept (with the submit), resp, receipt: no separate submit record
            await eventually(lambda: _true(store.jobs_committed == jobs + 3))
            await asyncio.sleep(0.1)
            assert store.jobs_committed == jobs + 3

            # an accept that failed: nothing is sent, the room it held is given back
            store.fail = True
            failed = core.send_sms(sms(text="lost"), "uid:1")
            await eventually(lambda: _true(len(store.held) == 1))
            store.release()
            with pytest.raises(StoreError):
                await failed
            store.fail = False
            assert link.counters.recorded_with_accept == 1
            await asyncio.sleep(0.2)
            assert sim.counters.submit_sm == 1
            assert link._recording == 0 and not link._ready
            assert await link.stop(1.0) == []
            await store.aclose()

    run(test)


def test_duplicates_give_their_room_back_and_long_messages_follow_in_order(
    tmp_path: Path,
) -> None:
    async def test() -> None:
        async with SmscSimulator(SimConfig(port=0)) as sim:
            store, link, core = await _bound_core(tmp_path, sim.port)
            first = await core.send_sms(sms(idempotency_key="k1"), "uid:1")
            for _ in range(40):  # more than the pipeline's room: each gives its room back
                again = await core.send_sms(sms(idempotency_key="k1"), "uid:1")
                assert again == {"message_id": first["message_id"], "duplicate": True}
            long = await core.send_sms(sms(text=LONG_TEXT), "uid:1")
            assert long["parts"] == 3
            ids = [first["message_id"], long["message_id"]]
            await eventually(lambda: all_in_state(store, ids, "delivered"))
            assert link.counters.recorded_with_accept == 2 and sim.counters.submit_sm == 4
            record = await store.get_message(long["message_id"])
            assert record is not None
            events = [(h.event, h.detail.get("part")) for h in record.history]
            assert events[:2] == [("accepted", None), ("submitted", 1)]
            submitted = [part for event, part in events if event == "submitted"]
            assert submitted == [1, 2, 3]  # one part in flight at a time, in order
            assert await link.stop(1.0) == []
            await store.aclose()

    run(test)


def test_without_a_bind_or_behind_a_queue_messages_are_accepted_as_pending(
    tmp_path: Path,
) -> None:
    async def test() -> None:
        store = SqliteStore(str(tmp_path / "db.sqlite"))
        link = CarrierLink(make_profile(tmp_path, closed_port()), store)  # never binds
        core = GatewayCore(store, {"sim": link}, Limits())
        await link.start()
        reply = await core.send_sms(sms(), "uid:1")
        record = await store.get_message(reply["message_id"])
        assert record is not None and [p.state for p in record.parts] == ["pending"]
        assert link.counters.recorded_with_accept == 0
        assert [p.message_id for p in await link.stop(0.1)] == [reply["message_id"]]
        await store.aclose()

        async with SmscSimulator(SimConfig(port=0, latency_ms=300)) as sim:
            (tmp_path / "two").mkdir()
            store, link, core = await _bound_core(tmp_path / "two", sim.port)
            # the room ahead of the windows (4 windows of 5, plus the window) fills up; later
            # messages queue behind the dispatcher's and are recorded when they are taken
            replies = [await core.send_sms(sms(text=f"m{n}"), "uid:1") for n in range(40)]
            assert link.counters.recorded_with_accept == 25
            assert link.dispatcher.waiting > 0
            late = await core.send_sms(sms(text="late"), "uid:1")
            assert link.counters.recorded_with_accept == 25
            ids = [r["message_id"] for r in [*replies, late]]
            await eventually(lambda: all_in_state(store, ids, "delivered"), timeout=20)
            assert sim.counters.submit_sm == 41
            # room again, but a queued message (here one waiting out a retry delay) goes first
            assert link.reserve_direct()
            link.direct_recorded(None)
            waiting = _parts("retry", 1)
            link.dispatcher.adopt(waiting)
            link.dispatcher.requeue(waiting[0], not_before=link._clock() + 60)
            assert link.dispatcher.waiting == 1 and not link.reserve_direct()
            assert link.dispatcher.drain() == waiting
            assert await link.stop(1.0) == []
            await store.aclose()

    run(test, timeout=30)


def test_a_link_that_stops_before_the_commit_hands_the_message_back(tmp_path: Path) -> None:
    async def test() -> None:
        async with SmscSimulator(SimConfig(port=0)) as sim:
            store = _HeldAccepts(str(tmp_path / "db.sqlite"))
            _, link, core = await _bound_core(tmp_path, sim.port, store)
            reply = core.send_sms(sms(text=LONG_TEXT), "uid:1")
            await eventually(lambda: _true(len(store.held) == 1))
            stopping = asyncio.ensure_future(link.stop(1.0))
            await asyncio.sleep(0.1)
            assert not stopping.done()  # it waits for the write it gave room to
            store.release()
            handed_back = await stopping
            message_id = (await reply)["message_id"]
            assert [(p.message_id, p.part_no) for p in handed_back] == [
                (message_id, 1),
                (message_id, 2),
                (message_id, 3),
            ]
            assert sim.counters.submit_sm == 0
            await store.aclose()

    run(test)


def test_dispatcher_adopts_a_message_whose_first_part_is_in_flight() -> None:
    d = Dispatcher(1000, 0.0)
    d.enqueue(_parts("a", 1))
    assert d.waiting == 1
    head, *rest = parts = _parts("b", 3)
    d.adopt(parts)
    assert d.in_flight == 1 and len(d) == 3  # a/1, b/2, b/3
    taken = d.take("x", 0.0)
    assert taken is not None and taken.message_id == "a"  # b/2 waits for b/1
    assert d.take("x", 0.0) is None and d.waiting == 0
    d.done(head)
    nxt = d.take("x", 0.0)
    assert nxt is rest[0]
    d.requeue(nxt)
    assert d.take("x", 0.0) is nxt
    d.done(nxt)
    d.done(taken)
    assert d.take("x", 0.0) is rest[1]
    d.done(rest[1])
    assert d.in_flight == 0 and len(d) == 0 and d.take("x", 0.0) is None


async def _message_ids(store: SqliteStore) -> list[str]:
    return await store._read(
        lambda conn: [r[0] for r in conn.execute("SELECT id FROM messages ORDER BY id")]
    )


async def _true(value: bool) -> bool:
    return value


def test_messages_of_one_loop_iteration_are_accepted_in_one_write(tmp_path: Path) -> None:
    async def test() -> None:
        async with SmscSimulator(SimConfig(port=0)) as sim:
            store, link, core = await _bound_core(tmp_path, sim.port)
            jobs = store.jobs_committed
            replies = [core.send_sms(sms(text=f"m{n}"), "uid:1") for n in range(10)]
            ids = [(await reply)["message_id"] for reply in replies]
            assert store.jobs_committed == jobs + 1 and len(set(ids)) == 10
            await eventually(lambda: all_in_state(store, ids, "delivered"))

            # a store that refuses the write: each message is answered E_QUEUE_FULL, and the
            # room the link reserved for each is given back
            def busy(*args: Any, **kwargs: Any) -> None:
                raise StoreBusy("injected: the writer queue is full")

            store.accept_many = busy  # type: ignore[method-assign]
            refused = [core.send_sms(sms(text=f"r{n}"), "uid:1") for n in range(3)]
            for reply in refused:
                with pytest.raises(ApiError) as full:
                    await reply
                assert full.value.code == ErrorCode.E_QUEUE_FULL
            assert link._recording == 0
            assert await link.stop(1.0) == []
            await store.aclose()

    run(test)
