"""GatewayCore in-process: admission, carrier choice, rebuilding parts after a restart."""

from __future__ import annotations

import socket
from pathlib import Path

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
