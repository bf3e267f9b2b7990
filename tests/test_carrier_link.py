"""CarrierLink against the SMSC simulator on 127.0.0.1 and a real SqliteStore."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.carriers.dispatch import AdaptiveRate, Dispatcher
from gateway.carriers.link import CarrierLink
from gateway.carriers.outbound import (
    OutboundPart,
    build_submits,
    encode_message,
    outbound_parts,
)
from gateway.ops.carrier_profile import CarrierProfile, load_carrier_profile
from gateway.smpp.pdu import SubmitSm
from gateway.smpp.reassembly import parse_udh
from gateway.smsc_sim import SmscSimulator
from gateway.smsc_sim.config import SimConfig
from gateway.store.sqlite_store import NewMessage, SqliteStore, StoreBusy, StoreError

LONG_TEXT = "The quick brown fox jumps over the lazy dog. " * 8  # 360 septets: 3 parts


def make_profile(
    tmp_path: Path,
    port: int,
    *,
    id_format: str = "hex",
    password: str = "password",
    mode: str = "transceiver",
    count: int = 1,
    tps: float = 1000,
) -> CarrierProfile:
    path = tmp_path / "sim.toml"
    path.write_text(
        f"""
[connection]
host = "127.0.0.1"
port = {port}
[account]
system_id = "smppclient1"
password = "{password}"
[binds]
mode = "{mode}"
count = {count}
[window]
size = 5
response_timeout_s = 5
[throughput]
tps = {tps}
[enquire_link]
interval_s = 5
timeout_s = 2
[reconnect]
initial_s = 0.05
max_s = 0.2
jitter = 0.2
bad_credentials_delay_s = 0.4
[submit]
source_addr = "GW"
source_ton = 5
source_npi = 0
[receipts]
id_format = "{id_format}"
"""
    )
    return load_carrier_profile(path)


def run(test: Callable[[], Awaitable[None]], timeout: float = 15.0) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(timeout):
            await test()

    asyncio.run(bounded())


async def eventually(predicate: Callable[[], Awaitable[bool]], timeout: float = 8.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.05)


async def send(
    link: CarrierLink, store: SqliteStore, text: str, dest: str = "447700900001", ref: int = 1
) -> str:
    encoded, parts = encode_message(link.profile, text)
    message_id, _ = await store.accept(
        NewMessage("client", "GW", dest, encoded.payload, encoded.data_coding, parts)
    )
    link.submit(outbound_parts(message_id, build_submits(link.profile, encoded, dest, ref)))
    return message_id


async def all_in_state(store: SqliteStore, ids: list[str], state: str) -> bool:
    for message_id in ids:
        record = await store.get_message(message_id)
        if record is None or record.state != state:
            return False
    return True


@pytest.mark.parametrize("id_format", ["hex", "decimal"])
def test_resps_recorded_and_receipts_correlated(tmp_path: Path, id_format: str) -> None:
    async def test() -> None:
        config = SimConfig(port=0, id_format=id_format, id_width=12, receipt_delay=0.05)
        if id_format == "hex":
            config = config.replace(id_uppercase=True)
        async with SmscSimulator(config) as sim:
            profile = make_profile(tmp_path, sim.port, id_format=id_format, count=2)
            store = SqliteStore(str(tmp_path / "db.sqlite"))
            link = CarrierLink(profile, store)
            await link.start()
            ids = [await send(link, store, f"hello {n}", ref=n) for n in range(20)]
            await eventually(lambda: all_in_state(store, ids, "delivered"))
            record = await store.get_message(ids[0])
            assert record is not None
            part = record.parts[0]
            assert part.carrier == profile.name and part.carrier_message_id_raw
            assert part.carrier_message_id_norm == part.carrier_message_id_norm.lower()
            assert link.counters.accepted == 20 and link.counters.failed == 0
            assert await link.stop(2.0) == []
            await store.aclose()

    run(test)


def test_multipart_has_a_receipt_per_part_in_order_on_one_bind(tmp_path: Path) -> None:
    async def test() -> None:
        async with SmscSimulator(SimConfig(port=0, receipt_delay=0.05)) as sim:
            profile = make_profile(tmp_path, sim.port, count=2)
            store = SqliteStore(str(tmp_path / "db.sqlite"))
            link = CarrierLink(profile, store, sticky_binds=True)
            await link.start()
            ids = [await send(link, store, LONG_TEXT, ref=n) for n in range(1, 4)]
            await eventually(lambda: all_in_state(store, ids, "delivered"))
            for message_id in ids:
                record = await store.get_message(message_id)
                assert record is not None
                assert [p.state for p in record.parts] == ["delivered"] * 3
                receipts = [h.detail["part"] for h in record.history if h.event == "receipt"]
                assert sorted(receipts) == [1, 2, 3]
            for ref in range(1, 4):
                sequences = [
                    concat.sequence
                    for pdu in sim.submitted
                    if isinstance(pdu, SubmitSm)
                    for concat, _ in [parse_udh(pdu.short_message)]
                    if concat is not None and concat.reference == ref
                ]
                assert sequences == [1, 2, 3]
            await link.stop(2.0)
            await store.aclose()

    run(test)


def test_throttled_messages_are_requeued_not_failed(tmp_path: Path) -> None:
    async def test() -> None:
        config = SimConfig(port=0, tps=40, tps_burst=2, receipt_delay=0.05)
        async with SmscSimulator(config) as sim:
            profile = make_profile(tmp_path, sim.port, tps=1000)
            store = SqliteStore(str(tmp_path / "db.sqlite"))
            link = CarrierLink(profile, store, throttle_recover_s=0.5)
            await link.start()
            ids = [await send(link, store, f"burst {n}", ref=n) for n in range(30)]
            await eventually(lambda: all_in_state(store, ids, "delivered"), timeout=10)
            assert link.counters.throttled > 0
            assert link.counters.failed == 0
            assert link.dispatcher.rate.rate < profile.throughput.tps
            # the carrier's health saw the throttling, and judged it (over 3% of submits)
            now = time.monotonic()
            view = link.health.view(now)
            assert view.errors["throttled"] == link.counters.throttled
            assert view.submits == 30 + link.counters.throttled
            assert link.health.evaluate(now) is True
            await link.stop(2.0)
            assert link.health.share == 0.0  # no bind left: no traffic
            await store.aclose()

    run(test)


def test_the_links_health_measures_response_latency_and_binds(tmp_path: Path) -> None:
    async def test() -> None:
        async with SmscSimulator(SimConfig(port=0, latency_ms=150)) as sim:
            profile = make_profile(tmp_path, sim.port, count=2)
            store = SqliteStore(str(tmp_path / "db.sqlite"))
            link = CarrierLink(profile, store)
            assert link.health.state == "down"  # not bound yet
            await link.start()
            await link.wait_bound()
            assert (link.health.state, link.health.binds_up) == ("healthy", 2)
            ids = [await send(link, store, f"m{n}", ref=n) for n in range(10)]
            await eventually(lambda: all_in_state(store, ids, "delivered"))
            view = link.health.view(time.monotonic())
            assert view.submits == 10 and view.submit_error_rate == 0.0
            assert view.p95_resp_s is not None and 0.14 <= view.p95_resp_s < 1.0
            # every receipt counted, with the time since its part went out
            assert view.receipts == 10 and view.receipt_failure_rate == 0.0
            assert view.p95_receipt_s is not None and view.p95_receipt_s >= view.p95_resp_s
            await asyncio.sleep(1.1)  # a dispatch tick judges the window
            assert link.health.last_bad is False and link.health.share == 1.0
            await link.stop(1.0)
            assert (link.health.state, link.health.share) == ("down", 0.0)
            await store.aclose()

    run(test)


def test_binds_come_back_after_the_smsc_restarts(tmp_path: Path) -> None:
    async def test() -> None:
        sim = SmscSimulator(SimConfig(port=0, receipt_delay=0.05))
        await sim.start()
        port = sim.port
        profile = make_profile(tmp_path, port, count=2)
        store = SqliteStore(str(tmp_path / "db.sqlite"))
        link = CarrierLink(profile, store, rng=random.Random(1))
        await link.start()
        await link.wait_bound()
        await sim.stop()
        await eventually(lambda: _true(link.binds_up == 0))
        ids = [await send(link, store, f"queued {n}", ref=n) for n in range(5)]
        await asyncio.sleep(0.3)  # a few refused reconnects
        assert link.counters.connect_errors > 0
        sim = SmscSimulator(SimConfig(port=port, receipt_delay=0.05))
        await sim.start()
        await link.wait_bound()
        await eventually(lambda: all_in_state(store, ids, "delivered"))
        await link.stop(2.0)
        await sim.stop()
        await store.aclose()

    run(test)


async def _true(value: bool) -> bool:
    return value


def test_bad_credentials_are_reported_once_and_retried_slowly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def test() -> None:
        async with SmscSimulator(SimConfig(port=0)) as sim:
            profile = make_profile(tmp_path, sim.port, password="wrong")
            store = SqliteStore(str(tmp_path / "db.sqlite"))
            link = CarrierLink(profile, store)
            await link.start()
            await asyncio.sleep(1.0)
            # bad_credentials_delay_s 0.4 over 1 s: about 3 attempts; initial_s 0.05 would
            # have made ~20 with backoff capped at 0.2
            assert 1 <= link.counters.bad_credentials <= 5
            assert link.counters.bind_attempts == link.counters.bad_credentials
            await link.stop(0.5)
            await store.aclose()

    with caplog.at_level(logging.ERROR, logger="gateway.carriers.link"):
        run(test)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "bind refused" in errors[0].getMessage()


@pytest.mark.parametrize("mode", ["transceiver", "tx_rx"])
def test_multipart_mo_becomes_one_inbound_event(tmp_path: Path, mode: str) -> None:
    async def test() -> None:
        async with SmscSimulator(SimConfig(port=0)) as sim:
            profile = make_profile(tmp_path, sim.port, mode=mode)
            store = SqliteStore(str(tmp_path / "db.sqlite"))
            link = CarrierLink(profile, store)
            await link.start()
            await link.wait_bound()
            pdus = await sim.inject_mo(LONG_TEXT, system_id="smppclient1")
            assert len(pdus) == 3

            async def stored() -> bool:
                return bool(await store.read_events("t", after_seq=0))

            await eventually(stored)
            await sim.wait_for(lambda: sim.counters.mo_sent == 3)
            events = await store.read_events("t", after_seq=0)
            assert [e.kind for e in events] == ["sms.inbound"]
            assert events[0].body["text"] == LONG_TEXT and events[0].body["parts"] == 3
            await link.stop(1.0)
            await store.aclose()

    run(test)


def test_stop_hands_back_every_part_not_answered(tmp_path: Path) -> None:
    async def test() -> None:
        async with SmscSimulator(SimConfig(port=0, latency_ms=300)) as sim:
            profile = make_profile(tmp_path, sim.port)
            store = SqliteStore(str(tmp_path / "db.sqlite"))
            link = CarrierLink(profile, store)
            await link.start()
            await link.wait_bound()
            ids = [await send(link, store, LONG_TEXT, ref=n) for n in range(10)]
            await eventually(lambda: _true(link.counters.submitted > 0))
            leftover = {(p.message_id, p.part_no) for p in await link.stop(0.1)}
            assert leftover
            with pytest.raises(RuntimeError):
                link.submit([])
            for message_id in ids:
                record = await store.get_message(message_id)
                assert record is not None
                for part in record.parts:
                    answered = part.resp_status is not None
                    assert answered != ((message_id, part.part_no) in leftover)
            await store.aclose()

    run(test)


# -- the dispatcher alone ------------------------------------------------------------------


def _parts(message_id: str, count: int) -> list[OutboundPart]:
    return [OutboundPart(message_id, n, SubmitSm()) for n in range(1, count + 1)]


def test_dispatcher_keeps_parts_in_order_one_in_flight_per_message() -> None:
    d = Dispatcher(1000, 0.0)
    d.enqueue(_parts("a", 2))
    d.enqueue(_parts("b", 1))
    first = d.take("x", 0.0)
    assert first is not None and (first.message_id, first.part_no) == ("a", 1)
    second = d.take("x", 0.0)
    assert second is not None and second.message_id == "b"  # a/2 waits for a/1
    assert d.take("x", 0.0) is None
    d.requeue(first)  # throttled: back at the head
    again = d.take("x", 0.0)
    assert again is first
    d.done(again)
    nxt = d.take("x", 0.0)
    assert nxt is not None and (nxt.message_id, nxt.part_no) == ("a", 2)


def test_dispatcher_sticky_and_retry_delay() -> None:
    d = Dispatcher(1000, 0.0, sticky=True)
    d.enqueue(_parts("a", 2))
    part = d.take("x", 0.0)
    assert part is not None
    d.done(part)
    assert d.take("y", 0.0) is None  # a/2 is pinned to bind x
    assert d.next_deadline("y", 0.0) is None  # nothing y could take: wait for an event
    assert d.next_deadline("x", 0.0) == 0.0
    d.forget_bind("x")
    retry = d.take("y", 0.0)
    assert retry is not None and retry.part_no == 2
    d.requeue(retry, not_before=5.0)
    assert d.take("y", 1.0) is None
    assert d.next_deadline("y", 1.0) == 5.0
    assert d.take("y", 5.0) is retry


def test_adaptive_rate_halves_then_recovers() -> None:
    rate = AdaptiveRate(100, 0.0, recover_after_s=5.0)
    rate.slow_down(1.0)
    rate.slow_down(1.5)
    assert rate.rate == 25
    rate.tick(3.0)
    assert rate.rate == 25
    rate.tick(6.5)
    rate.tick(11.5)
    assert rate.rate == 100
    for _ in range(10):
        rate.slow_down(20.0)
    assert rate.rate == 100 / 16


def test_the_window_keeps_submits_in_flight_while_the_carrier_is_slow(tmp_path: Path) -> None:
    """TPS = window / response time: with a carrier that answers each submit_sm after 300 ms,
    each bind has its whole window outstanding before the first answer comes back, instead of
    one PDU per round trip."""

    async def test() -> None:
        async with SmscSimulator(SimConfig(port=0, latency_ms=300)) as sim:
            profile = make_profile(tmp_path, sim.port, mode="transceiver", count=2)
            window = profile.window.size
            store = SqliteStore(str(tmp_path / "db.sqlite"))
            link = CarrierLink(profile, store)
            await link.start()
            await link.wait_bound()
            for n in range(4 * window):
                await send(link, store, f"message {n}", ref=n)
            most = 0
            async with asyncio.timeout(8):
                while link.counters.accepted == 0:  # until the first answer arrives
                    most = max(most, link.counters.submitted)
                    await asyncio.sleep(0.005)
            assert most == 2 * window  # both binds' windows full, nothing answered yet
            await eventually(lambda: _true(link.counters.accepted == 4 * window))
            assert sim.counters.submit_sm == 4 * window
            await link.stop(1.0)
            await store.aclose()

    run(test)


class _HeldSubmits(SqliteStore):
    """A store that holds back the news that a part's "submitted" record is committed (or, with
    `fail`, reports it as failed), until `release()`."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.held: list[Callable[[], None]] = []
        self.fail = False

    def record_submits(self, *args: Any, then: Any = None, **kwargs: Any) -> Any:
        def hold(error: BaseException | None, result: Any) -> None:
            if self.fail:  # read at the commit
                error = StoreError("injected: batch not committed")
            self.held.append(lambda: then(error, result))

        return super().record_submits(*args, then=hold, **kwargs)

    def release(self) -> None:
        held, self.held = self.held, []
        for callback in held:
            callback()


def test_a_part_goes_out_only_after_its_submitted_record_is_committed(tmp_path: Path) -> None:
    """So a crash can never leave a part at the carrier that the store still calls pending:
    every possible duplicate of the start-up resend is counted."""

    async def test() -> None:
        async with SmscSimulator(SimConfig(port=0)) as sim:
            profile = make_profile(tmp_path, sim.port)
            store = _HeldSubmits(str(tmp_path / "db.sqlite"))
            link = CarrierLink(profile, store, retry_delay_s=0.05)
            await link.start()
            await link.wait_bound()
            first = await send(link, store, "hello")
            await eventually(lambda: _true(len(store.held) == 1))
            record = await store.get_message(first)
            assert record is not None and record.parts[0].state == "submitted"  # committed
            await asyncio.sleep(0.2)
            assert sim.counters.submit_sm == 0  # but not sent
            store.release()
            await eventually(lambda: all_in_state(store, [first], "delivered"))
            assert sim.counters.submit_sm == 1

            # a record that failed to commit: the part waits and is recorded again, never
            # sent unrecorded
            store.fail = True
            second = await send(link, store, "again", ref=2)
            await eventually(lambda: _true(len(store.held) == 1))
            store.release()
            await eventually(lambda: _true(len(store.held) == 1))  # taken again after the delay
            assert sim.counters.submit_sm == 1 and link.counters.store_errors == 1
            store.fail = False
            store.release()
            await eventually(lambda: _true(len(store.held) == 1))
            store.release()
            await eventually(lambda: all_in_state(store, [second], "delivered"))
            assert sim.counters.submit_sm == 2
            assert await link.stop(1.0) == []
            await store.aclose()

    run(test)


def test_parts_taken_together_are_recorded_in_one_write_and_keep_their_order(
    tmp_path: Path,
) -> None:
    """The parts one dispatch takes ahead share a store write; if it fails they all wait and
    are recorded again, and still go out in the order they were queued."""

    async def test() -> None:
        async with SmscSimulator(SimConfig(port=0)) as sim:
            profile = make_profile(tmp_path, sim.port)
            store = _HeldSubmits(str(tmp_path / "db.sqlite"))
            link = CarrierLink(profile, store, retry_delay_s=0.05)
            await link.start()
            await link.wait_bound()
            ids, parts = [], []
            for n in range(6):
                encoded, count = encode_message(profile, f"m{n}")
                message_id, _ = await store.accept(
                    NewMessage("client", "GW", "447700900001", encoded.payload, 0, count)
                )
                ids.append(message_id)
                parts.append(outbound_parts(message_id, build_submits(profile, encoded, "1", n)))
            writes = store.jobs_committed
            store.fail = True
            for message_parts in parts:  # queued in one go: one dispatch takes them all
                link.submit(message_parts)
            await eventually(lambda: _true(len(store.held) == 1))
            assert store.jobs_committed == writes + 1  # six parts, one write
            store.fail = False  # only that write is reported as failed
            store.release()  # so every part waits for the retry delay, none is sent
            await eventually(lambda: _true(len(store.held) == 1))  # all taken again, together
            assert sim.counters.submit_sm == 0 and link.counters.store_errors == 6
            store.release()
            await eventually(lambda: all_in_state(store, ids, "delivered"))
            sent = [pdu.short_message for pdu in sim.submitted]
            assert sent == [b"m0", b"m1", b"m2", b"m3", b"m4", b"m5"]
            assert await link.stop(1.0) == []
            await store.aclose()

    run(test)


class _CountedAnswers(SqliteStore):
    """Counts the answer writes; the first `refuse` of them are refused (StoreBusy)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.writes: list[list[str]] = []
        self.refused: list[str] = []
        self.refuse = 0

    def record_answers(self, carrier: str, answers: Any, *args: Any, **kwargs: Any) -> Any:
        if self.refuse:
            self.refuse -= 1
            self.refused += [answer[0] for answer in answers]
            raise StoreBusy("injected: the writer queue is full")
        self.writes.append([answer[0] for answer in answers])
        return super().record_answers(carrier, answers, *args, **kwargs)


def test_responses_and_receipts_share_writes_and_keep_their_order(tmp_path: Path) -> None:
    async def test() -> None:
        async with SmscSimulator(SimConfig(port=0)) as sim:
            store = _CountedAnswers(str(tmp_path / "db.sqlite"))
            link = CarrierLink(make_profile(tmp_path, sim.port), store)
            await link.start()
            await link.wait_bound()
            ids = [await send(link, store, f"m{n}", ref=n) for n in range(20)]
            await eventually(lambda: all_in_state(store, ids, "delivered"))
            kinds = [kind for write in store.writes for kind in write]
            assert sorted(kinds) == ["receipt"] * 20 + ["resp"] * 20
            assert len(store.writes) < 40  # answers of one loop iteration share a write
            # each receipt found its part: its response had gone to the store before it
            assert link.inbound.receipts == 20 and link.inbound.receipts_unmatched == 0
            assert link.counters.store_errors == 0
            assert await link.stop(1.0) == []
            await store.aclose()

    run(test)


def test_answers_the_store_refuses_are_counted_and_their_receipts_left_unacked(
    tmp_path: Path,
) -> None:
    async def test() -> None:
        async with SmscSimulator(SimConfig(port=0, latency_ms=50)) as sim:
            store = _CountedAnswers(str(tmp_path / "db.sqlite"))
            link = CarrierLink(make_profile(tmp_path, sim.port), store)
            await link.start()
            await link.wait_bound()
            store.refuse = 2  # the first answers of the link: its response, its receipt
            first = await send(link, store, "refused")
            await eventually(lambda: _true(sorted(store.refused) == ["receipt", "resp"]))
            assert link.counters.store_errors == 1 and link.inbound.store_errors == 1
            await asyncio.sleep(0.2)
            record = await store.get_message(first)
            assert record is not None and record.parts[0].resp_status is None  # not recorded
            assert link.inbound.receipts == 0 and sim.counters.deliver_sm_acked == 0  # unacked
            second = await send(link, store, "fine", ref=2)
            await eventually(lambda: all_in_state(store, [second], "delivered"))
            assert await link.stop(1.0) is not None
            await store.aclose()

    run(test)


def test_dispatcher_takes_ahead_without_tokens_and_spends_them_per_send() -> None:
    d = Dispatcher(2, 0.0, per_bind_tps=1, sticky=True)  # 2 PDU/s for the carrier, 1 per bind
    d.enqueue(_parts("a", 2))
    d.enqueue(_parts("b", 1))
    d.enqueue(_parts("c", 1))
    taken = [d.take(None, 0.0, rated=False) for _ in range(4)]
    # the rate does not hold back taking ahead; one part per message in flight still holds
    assert [(p.message_id, p.part_no) for p in taken if p] == [("a", 1), ("b", 1), ("c", 1)]
    assert taken[3] is None and d.in_flight == 3
    assert d.next_deadline(None, 0.0) is None  # a/2 waits for a/1's answer, not for time
    assert d.spend("x", 0.0) == 0.0  # the carrier's and x's first tokens
    assert d.spend("x", 0.0) == pytest.approx(1.0)  # x's own rate: 1/s
    assert d.spend("y", 0.0) == 0.0  # the carrier's second token, y's first
    assert d.spend("y", 0.0) > 0 and d.spend("x", 0.25) > 0  # the carrier's rate: 2/s
    assert d.spend("x", 1.0) == 0.0
    # sticky: a message goes where its first part went, once `pin` says so
    assert d.pinned_to("a") is None
    d.pin("a", "x")
    assert d.pinned_to("a") == "x"
    d.done(taken[0])
    assert d.take("y", 5.0) is None  # a/2 pinned to x
    second = d.take(None, 5.0, rated=False)  # taking ahead is for whichever bind sends it
    assert second is not None and (second.message_id, second.part_no) == ("a", 2)
    d.requeue(second, not_before=7.0)
    assert d.next_deadline(None, 6.0) == 7.0  # a retry delay, tokens aside


def test_the_rate_holds_on_the_wire_with_parts_recorded_ahead(tmp_path: Path) -> None:
    """Tokens are spent as parts go out, not as they are recorded: commits that bunch parts
    together do not make a burst above the carrier's TPS."""

    async def test() -> None:
        async with SmscSimulator(SimConfig(port=0)) as sim:
            profile = make_profile(tmp_path, sim.port, tps=20)  # burst: 20 tokens, then 20/s
            store = SqliteStore(str(tmp_path / "db.sqlite"))
            link = CarrierLink(profile, store)
            await link.start()
            await link.wait_bound()
            loop = asyncio.get_running_loop()
            start = loop.time()
            for n in range(30):
                await send(link, store, f"m{n}", ref=n)
            await eventually(lambda: _true(link.counters.submitted >= 20))
            await asyncio.sleep(0.2)
            assert link.counters.submitted < 30  # 20 at once (the burst), then about 20/s
            await eventually(lambda: _true(sim.counters.submit_sm == 30))
            assert loop.time() - start >= 0.45  # 10 PDUs past the burst take 0.5 s at 20/s
            assert await link.stop(1.0) == []
            await store.aclose()

    run(test)


def test_failed_receipts_count_against_the_carriers_health(tmp_path: Path) -> None:
    async def test() -> None:
        config = SimConfig(port=0, receipt_delay=0.01, fail_ratio=1.0, seed=3)
        async with SmscSimulator(config) as sim:
            profile = make_profile(tmp_path, sim.port)
            store = SqliteStore(str(tmp_path / "db.sqlite"))
            link = CarrierLink(profile, store)
            await link.start()
            await link.wait_bound()
            ids = [await send(link, store, f"m{n}", ref=n) for n in range(25)]
            await eventually(lambda: all_in_state(store, ids, "failed"))
            now = time.monotonic()
            view = link.health.view(now)
            assert view.errors["receipt_failed"] == 25 and view.receipt_failure_rate == 1.0
            assert view.p95_receipt_s is not None
            assert link.health.evaluate(now) is True  # a bad verdict: over 3% failed
            await link.stop(1.0)
            await store.aclose()

    run(test)
