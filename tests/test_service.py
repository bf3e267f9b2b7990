"""GatewayCore in-process: admission, carrier choice, rebuilding parts after a restart."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from gateway.api.errors import ApiError, ErrorCode
from gateway.api.schema import SendRequest, parse_send
from gateway.carriers.link import CarrierLink
from gateway.ops.config import Limits
from gateway.service import GatewayCore
from gateway.store.sqlite_store import SqliteStore
from tests.test_carrier_link import make_profile, run

pytestmark = pytest.mark.timeout(30)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def send(**params: object) -> SendRequest:
    sender = {} if "sender_pool" in params else {"from": "Shop"}
    return parse_send({"to": "+447700900001", **sender, "text": "hello", **params})


def test_queue_limit_pool_choice_and_restart_rebuild(tmp_path: Path) -> None:
    profile = make_profile(tmp_path, closed_port())  # never binds: everything stays queued
    db = str(tmp_path / "gw.db")

    async def first_run() -> list[str]:
        store = SqliteStore(db)
        link = CarrierLink(profile, store)
        await link.start()
        core = GatewayCore(store, {"sim": link}, Limits(queue_max=4))
        ids = [(await core.send_sms(send(), "uid:1"))["message_id"]]
        long = await core.send_sms(send(text="ő" * 200, sender_pool="sim"), "uid:1")
        assert long["parts"] == 3  # UCS-2: 67 characters a part
        ids.append(long["message_id"])
        with pytest.raises(ApiError) as full:
            await core.send_sms(send(), "uid:1")
        assert full.value.code == ErrorCode.E_QUEUE_FULL and full.value.retriable
        with pytest.raises(ApiError) as unknown:
            await core.send_sms(send(sender_pool="nope"), "uid:1")
        assert unknown.value.code == ErrorCode.E_BAD_NUMBER
        record = await store.get_message(long["message_id"])
        assert record is not None and record.source_addr == "GW" and record.text == "ő" * 200
        await link.stop(0.1)
        await store.aclose()
        return ids

    async def second_run(ids: list[str]) -> None:
        store = SqliteStore(db)
        link = CarrierLink(profile, store)
        core = GatewayCore(store, {"sim": link}, Limits())
        assert await core.resend_pending() == 4
        parts = link.dispatcher.drain()
        assert [(p.message_id, p.part_no) for p in parts] == [
            (ids[0], 1),
            (ids[1], 1),
            (ids[1], 2),
            (ids[1], 3),
        ]
        first = parts[0].pdu
        assert (first.source_addr, first.source_addr_ton, first.destination_addr) == (
            "Shop",
            5,
            "447700900001",
        )
        refs = {p.pdu.short_message[:6] for p in parts[1:]}
        assert len({r[3] for r in refs}) == 1  # one concatenation reference, as first built
        await store.aclose()

    ids: list[str] = []

    async def both() -> None:
        ids.extend(await first_run())
        await second_run(ids)

    run(both)


def test_events_served_from_memory_match_the_log_and_fall_back_to_it(tmp_path: Path) -> None:
    """Subscribers that keep up are served from the core's recent events; one that asks for
    older events (before the core listened, or beyond what it keeps) reads the log."""
    from gateway import service as service_module

    async def body() -> None:
        store = SqliteStore(str(tmp_path / "gw.db"))
        for n in range(3):  # committed before the core listens: only the log has them
            await store.append_event("sms.inbound", {"n": n})
        core = GatewayCore(store, {}, Limits())
        early = await core.read_events("c", 0, 10)
        assert [(e["seq"], e["kind"], e["n"]) for e in early] == [
            (1, "sms.inbound", 0),
            (2, "sms.inbound", 1),
            (3, "sms.inbound", 2),
        ]
        for n in range(3, 12):
            await store.append_event("sms.inbound", {"n": n})
        await asyncio.wait_for(core.wait_for_events(11), 5)
        # heard live from seq 4 on (or 3: its commit may be announced just after we listen)
        assert core._recent and core._recent[0]["seq"] in (3, 4)
        from_log = [
            service_module._event_map(e.seq, e.at, e.kind, e.body)
            for e in await store.read_events("c", 0, 100)
        ]
        for after in range(0, 13):
            for limit in (1, 3, 100):
                got = await core.read_events("c", after, limit)
                assert got == from_log[after : after + limit], (after, limit)
        waiter = asyncio.ensure_future(core.wait_for_events(12))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        await store.append_event("receipt", {"n": 12})
        await asyncio.wait_for(waiter, 5)
        assert (await core.read_events("c", 12, 10))[0]["n"] == 12
        # The head can be known from the log before the commit's announcement has run: the
        # events in between must come from the log, not an empty answer (a subscriber would
        # spin on wait_for_events without yielding to the loop that runs the announcement).
        held: list[tuple[int, list[Any]]] = []
        loop = asyncio.get_running_loop()
        store._event_listeners[:] = [(loop, lambda head, events: held.append((head, events)))]
        await store.append_event("receipt", {"n": 13})
        await core._refresh_head()
        assert core._event_head == 14 and core._recent[-1]["seq"] == 13
        got = await asyncio.wait_for(core.read_events("c", 13, 10), 5)
        assert [e["n"] for e in got] == [13]
        core._on_events(*held[0])
        assert await core.read_events("c", 14, 10) == []
        store_status = (await core.status())["store"]
        assert store_status["checkpoints"] == store.checkpoints
        assert store_status["wal_frames"] == store.wal_frames
        core.close()
        await store.aclose()

    run(body)


def test_take_over_rebuilds_unsent_messages_with_the_new_profile(tmp_path: Path) -> None:
    """SIGHUP changed a carrier's profile: the old link's queued parts go to the new link,
    built again with the new profile, except a message already partly sent, whose remaining
    parts keep the old build (its segments must stay consistent). Validity on rebuilt parts is
    what is left of the client's."""
    import dataclasses

    old_profile = make_profile(tmp_path, closed_port())  # never binds: everything stays queued
    new_submit = dataclasses.replace(old_profile.submit, registered_delivery=0, dest_ton=2)
    new_profile = dataclasses.replace(old_profile, submit=new_submit)

    async def body() -> None:
        store = SqliteStore(str(tmp_path / "gw.db"))
        old = CarrierLink(old_profile, store)
        core = GatewayCore(store, {"sim": old}, Limits())
        whole = await core.send_sms(send(validity=600), "uid:1")
        long = await core.send_sms(send(text="ő" * 200), "uid:1")  # 3 parts
        leftover = old.dispatcher.drain()
        # part 1 of the long message went out under the old profile: only 2 and 3 come back
        leftover = [p for p in leftover if (p.message_id, p.part_no) != (long["message_id"], 1)]
        assert all(p.pdu.registered_delivery == 1 for p in leftover)
        new = CarrierLink(new_profile, store)
        core.links["sim"] = new
        assert await core.take_over(new, leftover) == (1, 2)
        queued = new.dispatcher.drain()
        assert [(p.message_id, p.part_no) for p in queued] == [
            (whole["message_id"], 1),
            (long["message_id"], 2),
            (long["message_id"], 3),
        ]
        rebuilt, *kept = queued
        assert (rebuilt.pdu.registered_delivery, rebuilt.pdu.dest_addr_ton) == (0, 2)
        assert (
            0
            < int(rebuilt.pdu.validity_period[8:10]) * 60 + int(rebuilt.pdu.validity_period[10:12])
            <= 600
        )  # relative "YYMMDDhhmmss000R": minutes and seconds left of 600 s
        assert all(p.pdu.registered_delivery == 1 for p in kept)
        await store.aclose()

    run(body)


def test_a_message_of_more_than_255_parts_is_refused_with_a_typed_error(tmp_path: Path) -> None:
    """Beyond what the API's own limits let through, but the carrier-side check stands."""
    from gateway.service import _build
    from gateway.smpp.text import EncodedText

    profile = make_profile(tmp_path, closed_port())
    huge = EncodedText(0, b"a" * (153 * 256), 153 * 256)  # 256 parts of 153 septets
    with pytest.raises(ApiError) as refused:
        _build(profile, huge, "+447700900001", 1, "GW", None, 0)
    assert refused.value.code == ErrorCode.E_BAD_PARAMS
    assert "too long for this carrier" in str(refused.value)
    most = EncodedText(0, b"a" * (153 * 255), 153 * 255)
    assert len(_build(profile, most, "+447700900001", 1, "GW", None, 0)) == 255


def test_failover_moves_the_untouched_queue_of_a_carrier_without_binds(tmp_path: Path) -> None:
    """Messages queued on a carrier that has no bind move to the route's other carrier, rebuilt
    with its profile, recorded as rerouted, and are delivered there."""
    from dataclasses import replace

    from gateway.routing.routes import load_routes
    from gateway.smsc_sim import SimConfig, SmscSimulator
    from tests.test_carrier_link import all_in_state, eventually

    async def test() -> None:
        async with SmscSimulator(SimConfig(port=0, receipt_delay=0.01)) as sim:
            (tmp_path / "a").mkdir()
            (tmp_path / "b").mkdir()
            down = replace(make_profile(tmp_path / "a", closed_port()), name="down")
            up = replace(make_profile(tmp_path / "b", sim.port), name="up")
            store = SqliteStore(str(tmp_path / "gw.db"))
            links = {"down": CarrierLink(down, store), "up": CarrierLink(up, store)}
            for link in links.values():
                await link.start()
            await links["up"].wait_bound()
            routes = [
                {"prefix": "+", "carriers": [{"carrier": "down"}, {"carrier": "up", "weight": 0}]}
            ]
            table = load_routes("gw.toml", routes, carriers=list(links))
            core = GatewayCore(store, links, Limits(), routes=table)
            ids = [
                (await core.send_sms(send(sender_pool="down", text=f"queued {n}"), "uid:1"))[
                    "message_id"
                ]
                for n in range(5)
            ]
            assert len(links["down"].dispatcher) == 5 and links["down"].health.share == 0
            assert await core.reroute() == 5
            assert len(links["down"].dispatcher) == 0
            await eventually(lambda: all_in_state(store, ids, "delivered"))
            for message_id in ids:
                record = await store.get_message(message_id)
                assert record is not None and record.carrier == "up"
                assert [p.carrier for p in record.parts] == ["up"]
                (moved,) = [h for h in record.history if h.event == "rerouted"]
                assert moved.detail == {"from": "down", "to": "up", "reason": "no bind up"}
            assert (await core.status())["queue"]["rerouted"] == 5
            assert await core.reroute() == 0  # nothing left to move
            for link in links.values():
                await link.stop(1.0)
            await store.aclose()

    run(test)
