"""A carrier's optional ``[connection] source_address``: the local address its binds come from.

End to end: a CarrierLink with a real SqliteStore against the SMSC simulator on 127.0.0.1,
which records the peer (host, port) of every bind it accepts (``sim.binds``).
"""

from __future__ import annotations

import errno
import logging
import socket
from pathlib import Path
from typing import Any

import pytest

from gateway.carriers.link import CarrierLink
from gateway.ops.carrier_profile import CarrierProfile, load_carrier_profile
from gateway.smsc_sim import BindMode, SimConfig, SmscSimulator
from gateway.store.sqlite_store import SqliteStore
from tests.test_carrier_link import all_in_state, eventually, make_profile, run, send

OTHER_LOOPBACK = "127.0.0.2"  # Linux routes all of 127.0.0.0/8 to lo
NOT_LOCAL = "192.0.2.1"  # TEST-NET-1 (RFC 5737): on no interface of a test machine


def with_source(tmp_path: Path, port: int, source: str | None, **options: Any) -> CarrierProfile:
    """test_carrier_link's profile, with ``source_address`` added when given."""
    profile = make_profile(tmp_path, port, **options)
    if source is None:
        assert profile.connection.source_address is None
        return profile
    assert profile.source is not None
    path = Path(profile.source)
    text = path.read_text()
    assert text.count("[connection]\n") == 1
    path.write_text(text.replace("[connection]\n", f'[connection]\nsource_address = "{source}"\n'))
    profile = load_carrier_profile(path)
    assert profile.connection.source_address == source
    return profile


def bind_error(address: str) -> OSError | None:
    """The error binding a TCP socket to ``address`` raises here, None when it binds."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address, 0))
        except OSError as exc:
            return exc
    return None


def test_binds_come_from_the_source_address_and_messages_flow(tmp_path: Path) -> None:
    error = bind_error(OTHER_LOOPBACK)
    if error is not None and error.errno == errno.EADDRNOTAVAIL:
        pytest.skip(f"{OTHER_LOOPBACK} is not a local address on this machine: {error}")
    assert error is None, error

    async def test() -> None:
        async with SmscSimulator(SimConfig(port=0, receipt_delay=0.05)) as sim:
            assert sim.host == "127.0.0.1"
            # tx_rx x 2: four binds, submits on the transmitters, receipts on the receivers
            profile = with_source(tmp_path, sim.port, OTHER_LOOPBACK, mode="tx_rx", count=2)
            store = SqliteStore(str(tmp_path / "db.sqlite"))
            link = CarrierLink(profile, store)
            await link.start()
            await link.wait_bound()
            ids = [await send(link, store, f"from {OTHER_LOOPBACK} {n}", ref=n) for n in range(10)]
            await eventually(lambda: all_in_state(store, ids, "delivered"))
            assert link.counters.accepted == 10 and link.counters.failed == 0
            assert link.counters.connect_errors == 0
            for message_id in ids:
                record = await store.get_message(message_id)
                assert record is not None
                assert [p.state for p in record.parts] == ["delivered"]
                assert record.parts[0].carrier == profile.name
            binds = list(sim.binds)
            # every bind the link made was accepted and recorded, each from the source address
            assert len(binds) == link.counters.binds_up == 4
            assert {b.mode for b in binds} == {BindMode.TRANSMITTER, BindMode.RECEIVER}
            assert {b.system_id for b in binds} == {"smppclient1"}
            assert [b.peer[0] for b in binds if b.peer is not None] == [OTHER_LOOPBACK] * 4
            assert len({b.peer for b in binds}) == 4  # four connections, four local ports
            assert await link.stop(2.0) == []
            await store.aclose()

    run(test)


def test_without_source_address_the_peer_is_the_default_loopback(tmp_path: Path) -> None:
    async def test() -> None:
        async with SmscSimulator(SimConfig(port=0, receipt_delay=0.05)) as sim:
            profile = with_source(tmp_path, sim.port, None, count=2)
            store = SqliteStore(str(tmp_path / "db.sqlite"))
            link = CarrierLink(profile, store)
            await link.start()
            await link.wait_bound()
            message_id = await send(link, store, "default source")
            await eventually(lambda: all_in_state(store, [message_id], "delivered"))
            binds = list(sim.binds)
            assert len(binds) == link.counters.binds_up == 2
            assert {b.mode for b in binds} == {BindMode.TRANSCEIVER}
            assert [b.peer[0] for b in binds if b.peer is not None] == ["127.0.0.1"] * 2
            assert await link.stop(2.0) == []
            await store.aclose()

    run(test)


def test_a_source_address_not_local_fails_connects_and_keeps_retrying(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    error = bind_error(NOT_LOCAL)
    if error is None:
        pytest.skip(f"{NOT_LOCAL} is a local address on this machine")
    attempts_wanted = 5
    counted: list[int] = []

    async def test() -> None:
        # the SMSC is up and would accept the bind: only the source address is wrong
        async with SmscSimulator(SimConfig(port=0)) as sim:
            profile = with_source(tmp_path, sim.port, NOT_LOCAL)
            store = SqliteStore(str(tmp_path / "db.sqlite"))
            link = CarrierLink(profile, store)
            await link.start()
            message_id = await send(link, store, "never sent")
            # a crashed supervisor would stop counting: reaching several proves the retrying
            await eventually(lambda: _true(link.counters.connect_errors >= attempts_wanted))
            assert link.binds_up == 0
            assert link.counters.binds_up == 0 and link.counters.bind_failures == 0
            assert link.counters.submitted == 0 and link.counters.failed == 0
            assert sim.counters.connections_opened == 0 and not sim.binds
            leftover = await link.stop(1.0)  # stops cleanly; the message is handed back unsent
            assert [(p.message_id, p.part_no) for p in leftover] == [(message_id, 1)]
            counters = link.counters
            # at most one attempt (the one stop() interrupted) did not end in a connect error
            assert counters.connect_errors <= counters.bind_attempts <= counters.connect_errors + 1
            record = await store.get_message(message_id)
            assert record is not None and record.parts[0].resp_status is None
            counted.append(counters.connect_errors)
            await store.aclose()

    with caplog.at_level(logging.WARNING, logger="gateway.carriers.link"):
        run(test)
    failed = [r for r in caplog.records if "connect failed" in r.getMessage()]
    assert len(failed) == counted[0] >= attempts_wanted  # every failure logged
    for record in failed:
        assert record.levelno == logging.WARNING
        exc = record.args[-1] if isinstance(record.args, tuple) else None
        assert isinstance(exc, OSError) and exc.errno == error.errno, record.getMessage()


async def _true(value: bool) -> bool:
    return value
