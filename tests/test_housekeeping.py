"""Scheduled housekeeping: old events and expired unmatched receipts are pruned, counted in
status; the interval is injected so the test does not wait for the configured one."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from gateway.carriers.link import CarrierLink
from gateway.daemon import DB_NAME, Daemon
from gateway.ops.carrier_profile import load_carrier_profiles
from gateway.ops.config import Limits, load_daemon_config
from gateway.service import GatewayCore
from gateway.smpp.pdu import DeliverSm
from gateway.smsc_sim.messages import build_receipt
from gateway.store.sqlite_store import SqliteStore
from tests.api_fakes import short_tmpdir
from tests.test_carrier_link import make_profile, run
from tests.test_service import closed_port

pytestmark = pytest.mark.timeout(30)

DAY = 86_400


async def seed(store: SqliteStore) -> None:
    """Three events two days old (the consumer "c" acked the first only), one fresh event, one
    expired unmatched receipt and one still waiting."""
    old = time.time() - 2 * DAY
    for n in range(3):
        await store.append_event("receipt", {"n": n}, now=old)
    await store.append_event("receipt", {"n": 3})
    await store.ack_events("c", 1)
    await store.store_unmatched_receipt("sim", "AA", {"state": "delivered"}, ttl_s=60, now=old)
    await store.store_unmatched_receipt("sim", "BB", {"state": "delivered"}, ttl_s=3600)


async def remaining(store: SqliteStore) -> list[int]:
    return [e.seq for e in await store.read_events("x", 0, 100)]


def test_core_prunes_on_its_interval_and_reports_it(tmp_path: Path) -> None:
    async def test() -> None:
        store = SqliteStore(str(tmp_path / "gw.db"))
        await seed(store)
        link = CarrierLink(make_profile(tmp_path, closed_port()), store)
        core = GatewayCore(store, {"sim": link}, Limits(event_retention_s=DAY))
        task = asyncio.create_task(core.run_housekeeping(0.05))
        async with asyncio.timeout(5):
            while core.housekeeping.runs < 2:
                await asyncio.sleep(0.01)
        task.cancel()
        # seq 1 is past retention and acked; 2 and 3 are old but "c" has not acked them
        assert await remaining(store) == [2, 3, 4]
        assert await store.take_unmatched("sim", "BB") == [{"state": "delivered"}]
        house = (await core.status())["housekeeping"]
        assert house["interval_s"] == 0.05
        assert (house["events_pruned"], house["unmatched_pruned"]) == (1, 1)
        assert (house["last_events_pruned"], house["last_unmatched_pruned"]) == (0, 0)
        assert house["failures"] == 0
        await store.aclose()

    run(test)


def test_daemon_runs_housekeeping_with_an_injected_interval() -> None:
    with short_tmpdir() as tmp:
        profiles = tmp / "profiles"
        profiles.mkdir()
        make_profile(profiles, closed_port())
        config_path = tmp / "gatewayd.toml"
        config_path.write_text(
            'carrier_profiles_dir = "profiles"\n[api]\nsocket_path = "api.sock"\n'
            '[store]\nstate_dir = "state"\n[limits]\nevent_retention_s = 86400\n'
            "housekeeping_interval_s = 3600\n"
        )
        config = load_daemon_config(config_path)
        assert config.limits.housekeeping_interval_s == 3600

        async def test() -> None:
            config.store.state_dir.mkdir()
            store = SqliteStore(str(config.store.state_dir / DB_NAME))
            await seed(store)
            await store.aclose()
            daemon = Daemon(config, load_carrier_profiles(profiles), housekeeping_interval_s=0.05)
            running = asyncio.create_task(daemon.run())
            async with asyncio.timeout(10):
                while daemon.core is None or daemon.core.housekeeping.runs < 1:
                    await asyncio.sleep(0.01)
            status = await daemon.core.status()
            assert status["housekeeping"]["interval_s"] == 0.05
            assert status["housekeeping"]["events_pruned"] == 1
            assert status["housekeeping"]["unmatched_pruned"] == 1
            daemon._stop.set()
            assert await running == 0

        run(test)


def test_unmatched_receipt_kept_for_the_carrier_profiles_ttl(tmp_path: Path) -> None:
    """local-sim style profile: receipts.unmatched_ttl_s decides when housekeeping drops it."""

    class Conn:
        def __init__(self) -> None:
            self.acked: list[DeliverSm] = []

        def ack(self, pdu: DeliverSm, status: int = 0) -> bool:
            self.acked.append(pdu)
            return True

    async def test() -> None:
        store = SqliteStore(str(tmp_path / "gw.db"))  # store default: 3600 s
        profile = make_profile(tmp_path, closed_port())
        assert profile.receipts.unmatched_ttl_s == 600  # the profile default
        link = CarrierLink(profile, store)
        receipt = build_receipt(
            message_id="ABCDEF",
            delivered=True,
            error=0,
            submitted_at=time.time(),
            done_at=time.time(),
            preview="hi",
            source=(5, 0, "GW"),
            destination=(1, 1, "447700900001"),
            include_tlvs=False,
        )
        conn = Conn()
        link.inbound.handle(conn, receipt)
        await link.inbound.wait_idle()
        assert conn.acked == [receipt] and link.inbound.receipts_unmatched == 1
        assert await store.prune_unmatched(now=time.time() + 590) == 0
        assert await store.prune_unmatched(now=time.time() + 610) == 1
        await store.aclose()

    run(test)
