"""sms.send's validity and priority: on every part, persisted, and never sent late."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway.carriers.link import CarrierLink
from gateway.carriers.outbound import outbound_parts, relative_validity
from gateway.ops.config import Limits
from gateway.service import GatewayCore
from gateway.smpp.pdu import SubmitSm
from gateway.smsc_sim import SmscSimulator
from gateway.smsc_sim.config import SimConfig
from gateway.store.sqlite_store import NewMessage, SqliteStore
from tests.test_carrier_link import eventually, make_profile, run
from tests.test_service import closed_port, send

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (1, "000000000001000R"),
        (59, "000000000059000R"),
        (3661, "000000010101000R"),
        (86_400, "000001000000000R"),
        (86_399, "000000235959000R"),
        (604_800, "000007000000000R"),
        (99 * 86_400 + 1, "000099000001000R"),
    ],
)
def test_relative_validity_is_exact(seconds: int, expected: str) -> None:
    assert relative_validity(seconds) == expected


@pytest.mark.parametrize("seconds", [0, -1, 100 * 86_400])
def test_relative_validity_out_of_range(seconds: int) -> None:
    with pytest.raises(ValueError, match="validity"):
        relative_validity(seconds)


def test_validity_and_priority_on_every_part_and_identical_after_restart(tmp_path: Path) -> None:
    profile = make_profile(tmp_path, closed_port())  # never binds: parts stay queued
    db = str(tmp_path / "gw.db")
    long_text = "ő" * 200  # UCS-2: 3 parts

    async def test() -> None:
        store = SqliteStore(db)
        link = CarrierLink(profile, store)
        await link.start()
        core = GatewayCore(store, {"sim": link}, Limits())
        sent = await core.send_sms(send(text=long_text, validity=86_400, priority=2), "uid:1")
        plain = await core.send_sms(send(), "uid:1")
        first = await link.stop(0.1)
        await store.aclose()
        by_message = {
            m: [p for p in first if p.message_id == m] for m in {p.message_id for p in first}
        }
        parts = by_message[sent["message_id"]]
        assert len(parts) == 3
        assert {(p.pdu.validity_period, p.pdu.priority_flag) for p in parts} == {
            ("000001000000000R", 2)
        }
        [default] = by_message[plain["message_id"]]
        assert (default.pdu.validity_period, default.pdu.priority_flag) == ("", 0)

        store = SqliteStore(db)
        record = await store.get_message(sent["message_id"])
        assert record is not None and (record.validity_s, record.priority) == (86_400, 2)
        link = CarrierLink(profile, store)
        core = GatewayCore(store, {"sim": link}, Limits())
        assert await core.resend_pending() == 4
        again = link.dispatcher.drain()
        assert [p.pdu for p in again] == [p.pdu for p in first]
        assert [p.expires_at for p in again][:3] == [record.expires_at()] * 3
        await store.aclose()

    run(test)


def test_validity_and_priority_reach_the_carrier(tmp_path: Path) -> None:
    async def test() -> None:
        async with SmscSimulator(SimConfig(port=0)) as sim:
            profile = make_profile(tmp_path, sim.port)
            store = SqliteStore(str(tmp_path / "db.sqlite"))
            link = CarrierLink(profile, store)
            await link.start()
            core = GatewayCore(store, {"sim": link}, Limits())
            await core.send_sms(send(validity=3661, priority=3), "uid:1")
            await sim.wait_for(lambda: sim.counters.accepted == 1)
            [pdu] = [p for p in sim.submitted if isinstance(p, SubmitSm)]
            assert (pdu.validity_period, pdu.priority_flag) == ("000000010101000R", 3)
            await link.stop(1.0)
            await store.aclose()

    run(test)


def test_message_expired_across_a_restart_is_recorded_not_sent(tmp_path: Path) -> None:
    profile = make_profile(tmp_path, closed_port())

    async def test() -> None:
        store = SqliteStore(str(tmp_path / "gw.db"))
        old = time.time() - 120  # accepted two minutes ago, valid for one
        message = NewMessage(
            "uid:1",
            "Shop",
            "+447700900001",
            b"hello",
            client_ref="r1",
            carrier="sim",
            text="hello",
            concat_ref=1,
            validity_s=60,
        )
        stale, _ = await store.accept(message, now=old)
        fresh, _ = await store.accept(message, now=time.time())
        link = CarrierLink(profile, store)
        core = GatewayCore(store, {"sim": link}, Limits())
        assert await core.resend_pending() == 1
        assert [p.message_id for p in link.dispatcher.drain()] == [fresh]

        got = await core.get_sms(stale)
        assert got is not None and got["state"] == "expired"
        assert [p["state"] for p in got["parts"]] == ["expired"]
        last = got["history"][-1]
        assert last["event"] == "expired" and "validity of 60 s ran out" in last["detail"]["reason"]
        events = await core.read_events("c", 0, 10)
        assert [(e["kind"], e["message_id"], e["client_ref"], e["parts"]) for e in events] == [
            ("expired", stale, "r1", [1])
        ]
        status = await core.status()
        assert status["messages"]["expired_before_send"] == 1
        assert {p.message_id for p in await store.pending_after_restart()} == {fresh}
        await store.aclose()

    run(test)


def test_part_expiring_in_the_queue_is_dropped_at_dispatch(tmp_path: Path) -> None:
    async def test() -> None:
        async with SmscSimulator(SimConfig(port=0)) as sim:
            profile = make_profile(tmp_path, sim.port)
            store = SqliteStore(str(tmp_path / "db.sqlite"))
            wall = [time.time()]
            link = CarrierLink(profile, store, wall_clock=lambda: wall[0])
            core = GatewayCore(store, {"sim": link}, Limits())
            # queued before any bind is up, then the wall clock passes the validity
            expiring = await core.send_sms(send(text="x" * 200, validity=10), "uid:1")
            lasting = await core.send_sms(send(), "uid:1")
            wall[0] += 11
            await link.start()
            await sim.wait_for(lambda: sim.counters.accepted == 1)

            async def expired() -> bool:
                record = await store.get_message(expiring["message_id"])
                return record is not None and record.state == "expired"

            await eventually(expired)
            record = await store.get_message(expiring["message_id"])
            assert record is not None
            assert [p.state for p in record.parts] == ["expired", "expired"]
            assert record.history[-1].detail["when"] == "dispatch"
            submitted = [p for p in sim.submitted if isinstance(p, SubmitSm)]
            assert [p.short_message for p in submitted] == [b"hello"]
            assert link.counters.expired == 1 and len(link.dispatcher) == 0
            assert (await core.status())["messages"]["expired_before_send"] == 1
            other = await store.get_message(lasting["message_id"])
            assert other is not None and other.state != "expired"
            await link.stop(1.0)
            await store.aclose()

    run(test)


def test_outbound_parts_carry_the_deadline() -> None:
    parts = outbound_parts("m", [SubmitSm(), SubmitSm()], 123.0)
    assert [p.expires_at for p in parts] == [123.0, 123.0]
