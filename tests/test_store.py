"""The SQLite message store: ids, idempotency, group commit, correlation, event log, restart and
a real kill -9 of a writing process."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.store import schema, sqlite_store
from gateway.store.ids import message_id_unix_ms, new_message_id, uuid7
from gateway.store.sqlite_store import (
    Event,
    NewMessage,
    ReceiptMatch,
    SqliteStore,
    StoreBusy,
    StoreClosed,
    StoreError,
    UnknownPart,
)

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, params=["native", "pure"])
def statements_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every store test runs with each backend of the writer's hot statements."""
    if request.param == "pure":
        monkeypatch.setenv("GATEWAY_PURE", "1")
    else:
        monkeypatch.delenv("GATEWAY_PURE", raising=False)
    return str(request.param)


def expected_backend() -> str:
    return "pure" if os.environ.get("GATEWAY_PURE", "") not in ("", "0") else "native"


def run(fn: Callable[[SqliteStore], Awaitable[T]], path: Path, **options: Any) -> T:
    """Open the store, run `fn` in an event loop, close the store."""

    async def main() -> T:
        store = SqliteStore(str(path), **options)
        assert store.statements_backend == expected_backend()
        try:
            return await fn(store)
        finally:
            await store.aclose()

    return asyncio.run(main())


def msg(n: int = 0, **fields: Any) -> NewMessage:
    base: dict[str, Any] = {
        "client_id": "acme",
        "source_addr": "ACME",
        "dest_addr": "+447700900123",
        "payload": f"hello {n}".encode(),
        "client_ref": f"ref-{n}",
    }
    base.update(fields)
    return NewMessage(**base)


def at_version(conn: sqlite3.Connection, version: int) -> None:
    """Build the schema as release `version` left it, in the open transaction."""
    conn.execute(
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    for number, script in enumerate(schema.MIGRATIONS[:version], 1):
        for statement in schema._statements(script):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (?, 0)", (number,))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


# ---------------------------------------------------------------------------- ids


def test_ids_are_uuid7_strictly_increasing_within_one_millisecond() -> None:
    ids = [str(uuid7(now_ms=1_700_000_000_000)) for _ in range(5000)]  # > 4096: counter overflow
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    parsed = uuid.UUID(ids[0])
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert message_id_unix_ms(ids[0]) >= 1_700_000_000_000
    fresh = new_message_id()
    assert len(fresh) == 36 and fresh > ids[-1]
    assert str(uuid.UUID(fresh)) == fresh and uuid.UUID(fresh).version == 7  # canonical form
    assert abs(message_id_unix_ms(fresh) - time.time() * 1000) < 60_000
    with pytest.raises(ValueError):
        message_id_unix_ms(str(uuid.uuid4()))


@settings(max_examples=50, deadline=None)
# past timestamps only: a future one would carry the process's later ids forward with it
@given(st.lists(st.integers(min_value=0, max_value=time.time_ns() // 10**6), max_size=200))
def test_ids_never_go_backwards_even_when_the_clock_does(clock: list[int]) -> None:
    ids = [uuid7(now_ms=ms).int for ms in clock]
    assert all(a < b for a, b in itertools.pairwise(ids))


# ---------------------------------------------------------------------------- accept


def test_idempotency_key_returns_the_existing_id(db: Path) -> None:
    async def body(store: SqliteStore) -> None:
        first = await store.accept(msg(1, idempotency_key="k1"))
        again = await store.accept(msg(2, idempotency_key="k1"))
        other_client = await store.accept(msg(3, idempotency_key="k1", client_id="other"))
        no_key = [await store.accept(msg(4)) for _ in range(2)]
        assert first[1] and again == (first[0], False)
        assert other_client[1] and other_client[0] != first[0]
        assert all(created for _, created in no_key) and no_key[0][0] != no_key[1][0]
        # the same key twice in one batch: one row
        racing = await asyncio.gather(
            *(store.accept(msg(5, idempotency_key="k2")) for _ in range(20))
        )
        assert len({mid for mid, _ in racing}) == 1
        assert sum(created for _, created in racing) == 1
        record = await store.get_message(first[0])
        assert record is not None and record.client_ref == "ref-1" and record.payload == b"hello 1"

    run(body, db)


def test_group_commit_batches_concurrent_accepts(db: Path) -> None:
    async def body(store: SqliteStore) -> tuple[int, int]:
        results = await asyncio.gather(*(store.accept(msg(n)) for n in range(1000)))
        assert len({mid for mid, _ in results}) == 1000
        return store.commits, store.jobs_committed

    commits, jobs = run(body, db)
    assert jobs == 1000
    assert commits <= 100, f"{commits} commits for 1000 concurrent accepts"
    # the row bound closes batches too
    commits_small, _ = run(body, db.with_name("small.db"), group_commit_rows=10)
    assert commits_small >= 100


def test_accept_raises_store_busy_when_the_queue_is_full_and_drops_nothing(db: Path) -> None:
    async def body(store: SqliteStore) -> None:
        gate = threading.Event()
        blocker = store._submit(lambda conn: gate.wait(10))  # holds the writer in one batch
        while store.queued:
            await asyncio.sleep(0.001)
        waiting = [asyncio.ensure_future(store.accept(msg(n))) for n in range(4)]
        await asyncio.sleep(0)  # let them enqueue
        with pytest.raises(StoreBusy):
            await store.accept(msg(99))
        # writes for messages already accepted have a reserve beyond the admission limit
        event = asyncio.ensure_future(store.append_event("call", {"n": 1}))
        await asyncio.sleep(0)
        gate.set()
        await blocker
        ids = [mid for mid, _ in await asyncio.gather(*waiting)]
        assert await event > 0
        for mid in ids:
            assert await store.get_message(mid) is not None

    run(body, db, max_queue=4)


def test_a_failing_write_does_not_spoil_its_batch(db: Path) -> None:
    async def body(store: SqliteStore) -> None:
        results = await asyncio.gather(
            store.accept(msg(1)),
            store.record_submit("no-such-message", 1, "c1"),
            store.accept(msg(2)),
            return_exceptions=True,
        )
        assert isinstance(results[1], UnknownPart)
        for ok in (results[0], results[2]):
            assert isinstance(ok, tuple) and await store.get_message(ok[0]) is not None

    run(body, db)


def test_a_failing_write_leaves_no_history_or_event_behind(db: Path) -> None:
    """History rows and announced events are written with the batch; a job that raised after
    adding some must take them back with it, in the same batch as successful jobs."""
    from gateway.store import sqlite_store

    async def body(store: SqliteStore) -> None:
        heard: list[Event] = []
        store.add_event_listener(asyncio.get_running_loop(), lambda _h, ev: heard.extend(ev))
        mid, _ = await store.accept(msg(1))

        def half_done(conn: Any) -> None:
            sqlite_store._history(conn, mid, conn.tick(0.0), "t", "half", {})
            sqlite_store._append_event(conn, "half", {}, 0.0)
            raise UnknownPart("gave up half way")

        results = await asyncio.gather(
            store.record_submit(mid, 1, "c1"),
            store._submit(half_done),
            store.append_event("whole", {}),
            return_exceptions=True,
        )
        assert isinstance(results[1], UnknownPart) and results[2] == 1
        record = await store.get_message(mid)
        assert record is not None
        assert [h.event for h in record.history] == ["accepted", "submitted"]
        assert [e.kind for e in await store.read_events("r", 0, 10)] == ["whole"]
        for _ in range(100):
            if heard:
                break
            await asyncio.sleep(0.01)
        assert [e.kind for e in heard] == ["whole"]

    run(body, db, group_commit_ms=50)


def test_close_flushes_queued_writes_and_refuses_new_ones(db: Path) -> None:
    async def body() -> list[str]:
        store = SqliteStore(str(db), group_commit_ms=50)
        tasks = [asyncio.ensure_future(store.accept(msg(n))) for n in range(300)]
        await asyncio.sleep(0)
        store.close()
        with pytest.raises(StoreClosed):
            await store.accept(msg(0))
        return [mid for mid, _ in await asyncio.gather(*tasks)]

    ids = asyncio.run(body())
    with sqlite3.connect(db) as conn:
        stored = {r[0] for r in conn.execute("SELECT id FROM messages")}
    assert stored == set(ids)


def test_options_are_validated(db: Path) -> None:
    with pytest.raises(ValueError):
        SqliteStore(str(db), synchronous="off")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SqliteStore(":memory:")
    mid = run(lambda s: s.accept(msg(1)), db, synchronous="full")[0]
    assert run(lambda s: s.get_message(mid), db) is not None


# ---------------------------------------------------------------------------- lifecycle


def test_history_is_ordered_and_keeps_carrier_codes(db: Path) -> None:
    async def body(store: SqliteStore) -> None:
        mid, _ = await store.accept(msg(1, parts_total=2))
        for part, cid in ((1, "0001A2B3"), (2, "0001A2B4")):
            await store.record_submit(mid, part, "carrier-a")
            await store.record_submit_resp(mid, part, "carrier-a", 0, cid, cid.lstrip("0").lower())
        await store.record_receipt("carrier-a", "1a2b3", "delivered", "000", {"stat": "DELIVRD"})
        record = await store.get_message(mid)
        assert record is not None and record.state == "in_flight"
        assert await store.record_receipt("carrier-a", "1a2b4", "undeliverable", "0x45") == (
            ReceiptMatch(mid, 2)
        )
        record = await store.get_message(mid)
        assert record is not None
        assert [h.event for h in record.history] == [
            "accepted",
            "submitted",
            "resp",
            "submitted",
            "resp",
            "receipt",
            "receipt",
        ]
        assert [h.seq for h in record.history] == list(range(1, 8))
        assert record.history[5].detail["stat"] == "DELIVRD"
        assert record.history[6].detail["err"] == "0x45"
        assert record.history[2].detail["carrier_message_id"] == "0001A2B3"
        assert [p.state for p in record.parts] == ["delivered", "failed"]
        assert record.parts[0].carrier_message_id_raw == "0001A2B3"
        assert record.state == "failed" and record.carrier == "carrier-a"
        assert record.created_at.endswith("Z")

    run(body, db)


def test_accept_can_record_the_first_part_as_submitted_in_the_same_write(db: Path) -> None:
    """What the carrier link asks for when it has room at once: the message and part 1's
    "submitted" step in one write, as if record_submit had followed the accept."""

    async def body(store: SqliteStore) -> None:
        with pytest.raises(ValueError, match="carrier"):
            store.accept(msg(0, first_part_submitted=True))  # submitted to whom?
        jobs = store.jobs_committed
        mid, created = await store.accept(
            msg(1, parts_total=2, carrier="carrier-a", first_part_submitted=True)
        )
        assert created and store.jobs_committed == jobs + 1
        record = await store.get_message(mid)
        assert record is not None and record.state == "in_flight"
        assert [(p.state, p.carrier) for p in record.parts] == [
            ("submitted", "carrier-a"),
            ("pending", None),
        ]
        assert [(h.seq, h.event) for h in record.history] == [(1, "accepted"), (2, "submitted")]
        assert record.history[1].detail == {"part": 1, "carrier": "carrier-a"}
        assert record.history[1].at == record.created_at
        pending = await store.pending_after_restart()
        assert [(p.part_no, p.state) for p in pending] == [(1, "submitted"), (2, "pending")]
        # the rest of the life is the usual one, a resend of part 1 included
        await store.record_submit_resp(mid, 1, "carrier-a", 0x58, None, None)  # throttled
        await store.record_submit(mid, 1, "carrier-a")
        await store.record_submit_resp(mid, 1, "carrier-a", 0, "A1", "a1")
        await store.record_receipt("carrier-a", "a1", "delivered", "000", {"stat": "DELIVRD"})
        record = await store.get_message(mid)
        assert record is not None
        assert [h.event for h in record.history] == [
            "accepted",
            "submitted",
            "resp",
            "submitted",
            "resp",
            "receipt",
        ]
        assert record.parts[0].state == "delivered"

    run(body, db)


def test_writes_from_two_event_loops_are_answered_each_on_its_own_loop(db: Path) -> None:
    """One writer batch can hold writes of several loops (threads): each is told on its own."""
    store = SqliteStore(str(db))
    start = threading.Barrier(2)
    heard: dict[int, list[int]] = {}

    def client(n: int) -> None:
        async def body() -> None:
            loop = asyncio.get_running_loop()
            start.wait()
            done: list[int] = []

            def then(error: BaseException | None, result: Any) -> None:
                assert error is None and asyncio.get_running_loop() is loop
                done.append(threading.get_ident())

            for k in range(200):
                store.accept(msg(1000 * n + k), then=then)
            await asyncio.gather(*(store.accept(msg(1000 * n + 500 + k)) for k in range(200)))
            while len(done) < 200:
                await asyncio.sleep(0.01)
            heard[n] = done

        asyncio.run(body())

    threads = [threading.Thread(target=client, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    store.close()
    assert sorted(heard) == [0, 1]
    for n, thread in enumerate(threads):
        assert set(heard[n]) == {thread.ident}
    assert store.jobs_committed == 800 and store.commits < 800


def test_record_submits_writes_several_parts_or_none(db: Path) -> None:
    async def body(store: SqliteStore) -> None:
        a, _ = await store.accept(msg(1, parts_total=2))
        b, _ = await store.accept(msg(2))
        outcomes: list[tuple[Any, Any]] = []
        done = asyncio.Event()

        def then(error: BaseException | None, result: Any) -> None:
            outcomes.append((error, result))
            done.set()

        jobs = store.jobs_committed
        store.record_submits([(a, 1), (b, 1)], "carrier-a", then=then)
        await done.wait()
        assert outcomes == [(None, None)] and store.jobs_committed == jobs + 1
        for message_id in (a, b):
            record = await store.get_message(message_id)
            assert record is not None and record.parts[0].state == "submitted"
            assert [h.event for h in record.history] == ["accepted", "submitted"]
        done.clear()
        store.record_submits([(a, 2), ("no-such-message", 1)], "carrier-a", then=then)
        await done.wait()
        assert isinstance(outcomes[1][0], UnknownPart)
        record = await store.get_message(a)
        assert record is not None and record.parts[1].state == "pending"  # none of them

    run(body, db)


def test_record_answers_writes_responses_and_receipts_in_their_order(db: Path) -> None:
    """One write for a carrier link's answers of one loop iteration: a receipt behind its
    response is matched, one ahead of it waits as unmatched and the response applies it, a
    response for an unknown part is skipped alone."""

    async def body(store: SqliteStore) -> None:
        a, _ = await store.accept(msg(1, carrier="c", first_part_submitted=True))
        b, _ = await store.accept(msg(2, carrier="c", first_part_submitted=True))
        delivered = ("delivered", "000", {"stat": "DELIVRD"}, None)
        answers: list[tuple[Any, ...]] = [
            ("receipt", "b1", *delivered),  # ahead of its response
            ("resp", a, 1, 0, "A1", "a1"),
            ("receipt", "a1", *delivered),  # behind it
            ("resp", "no-such-message", 1, 0, "G1", "g1"),
            ("resp", b, 1, 0, "B1", "b1"),
        ]
        results: list[Any] = []
        done = asyncio.Event()

        def then(error: BaseException | None, result: Any) -> None:
            assert error is None
            results.extend(result)
            done.set()

        jobs = store.jobs_committed
        store.record_answers("c", answers, then=then)
        await done.wait()
        assert store.jobs_committed == jobs + 1
        assert results[:3] == [None, 0, ReceiptMatch(a, 1)]
        assert isinstance(results[3], UnknownPart) and results[4] == 1
        for message_id in (a, b):
            record = await store.get_message(message_id)
            assert record is not None and record.state == "delivered"
            assert [h.event for h in record.history] == ["accepted", "submitted", "resp", "receipt"]

    run(body, db)


def test_accept_many_stores_several_messages_in_one_write_or_none(db: Path) -> None:
    async def body(store: SqliteStore) -> None:
        outcomes: list[tuple[Any, Any]] = []
        done = asyncio.Event()

        def then(error: BaseException | None, result: Any) -> None:
            outcomes.append((error, result))
            done.set()

        jobs = store.jobs_committed
        batch = [
            (msg(1, idempotency_key="k"), None),
            (msg(2), 1.5),
            (msg(3, idempotency_key="k"), None),
        ]
        store.accept_many(batch, then=then)
        await done.wait()
        error, results = outcomes[0]
        assert error is None and store.jobs_committed == jobs + 1
        assert [created for _, created in results] == [True, True, False]
        assert results[2][0] == results[0][0]  # the same key in the same write: a duplicate
        record = await store.get_message(results[1][0])
        assert record is not None and record.client_ref == "ref-2"
        assert record.created_at.startswith("1970-01-01T00:00:01.500")
        done.clear()
        bad = [(msg(4), None), (msg(5, source_addr=None), None)]  # NOT NULL: the write fails
        store.accept_many(bad, then=then)
        await done.wait()
        assert isinstance(outcomes[1][0], sqlite3.IntegrityError) and outcomes[1][1] is None
        count = await store._read(lambda c: c.execute("SELECT count(*) FROM messages").fetchone())
        assert count[0] == 2  # nothing of the failed write
        with pytest.raises(ValueError):
            store.accept_many([(msg(6, parts_total=0), None)], then=then)

    run(body, db)


def test_rejected_submit_resp_marks_the_message_failed(db: Path) -> None:
    async def body(store: SqliteStore) -> None:
        mid, _ = await store.accept(msg(1))
        await store.record_submit(mid, 1, "carrier-a")
        await store.record_submit_resp(mid, 1, "carrier-a", 0x58, None, None)
        record = await store.get_message(mid)
        assert record is not None and record.state == "failed"
        assert record.parts[0].resp_status == 0x58

    run(body, db)


def test_correlation_by_normalised_id_and_unmatched_then_matched(db: Path) -> None:
    async def body(store: SqliteStore) -> None:
        mid, _ = await store.accept(msg(1))
        await store.record_submit(mid, 1, "carrier-a")
        # the receipt overtakes the submit_sm_resp
        assert await store.record_receipt("carrier-a", "ff", "delivered", "000") is None
        assert await store.find_by_carrier_id("carrier-a", "ff") is None
        applied = await store.record_submit_resp(mid, 1, "carrier-a", 0, "255", "ff")
        assert applied == 1
        assert await store.find_by_carrier_id("carrier-a", "ff") == ReceiptMatch(mid, 1)
        assert await store.find_by_carrier_id("carrier-b", "ff") is None
        record = await store.get_message(mid)
        assert record is not None and record.state == "delivered"
        assert record.parts[0].receipt_state == "delivered"
        assert await store.take_unmatched("carrier-a", "ff") == []  # consumed

        # the primitives, and expiry
        await store.store_unmatched_receipt("carrier-b", "1", {"state": "expired"}, ttl_s=60)
        await store.store_unmatched_receipt("carrier-b", "1", {"state": "x"}, ttl_s=-1)
        assert await store.take_unmatched("carrier-b", "1") == [{"state": "expired"}]
        await store.store_unmatched_receipt("carrier-b", "2", {}, ttl_s=10, now=1000.0)
        assert await store.prune_unmatched(now=1011.0) == 1
        assert await store.record_receipt("carrier-b", "3", "delivered", now=1000, ttl_s=5) is None
        assert await store.prune_unmatched(now=1004.0) == 0
        assert await store.prune_unmatched(now=1005.0) == 1

    run(body, db)


# ---------------------------------------------------------------------------- event log


def test_event_log_cursors_replay_ack_and_prune(db: Path) -> None:
    async def body(store: SqliteStore) -> None:
        seqs = [await store.append_event("mo", {"n": n}, now=1000.0 + n) for n in range(5)]
        assert seqs == sorted(seqs) and len(set(seqs)) == 5
        first = await store.read_events("billing", limit=2)
        assert [e.body for e in first] == [{"n": 0}, {"n": 1}]
        # no ack: the same events again
        assert [e.seq for e in await store.read_events("billing", limit=2)] == seqs[:2]
        await store.ack_events("billing", first[-1].seq)
        assert [e.body["n"] for e in await store.read_events("billing")] == [2, 3, 4]
        await store.ack_events("billing", seqs[0])  # never backwards
        assert await store.cursor("billing") == seqs[1]
        assert [e.seq for e in await store.read_events("billing", after_seq=0)] == seqs  # replay
        with pytest.raises(ValueError):
            await store.ack_events("billing", seqs[-1] + 1)
        await store.ack_events("audit", seqs[3])
        # everything is old enough, but billing has only acked two
        assert await store.prune_events(retention_s=10, now=2000.0) == 2
        assert await store.prune_events(retention_s=10, now=2000.0, keep_unacked=False) == 3
        assert await store.read_events("billing") == []
        nxt = await store.append_event("mo", {"n": 5})
        assert nxt > seqs[-1]  # sequence numbers are never reused

    run(body, db)


def test_event_numbers_are_not_reused_after_a_restart_with_every_event_pruned(db: Path) -> None:
    async def fill(store: SqliteStore) -> list[int]:
        seqs = [await store.append_event("mo", {"n": n}, now=1000.0) for n in range(3)]
        assert await store.prune_events(retention_s=10, now=2000.0, keep_unacked=False) == 3
        return seqs

    seqs = run(fill, db)

    async def after(store: SqliteStore) -> tuple[int, int]:
        return await store.last_event_seq(), await store.append_event("mo", {"n": 3})

    assert run(after, db) == (seqs[-1], seqs[-1] + 1)


def test_v6_events_keep_their_numbers_and_the_old_sequence_through_v7(db: Path) -> None:
    with sqlite3.connect(db, isolation_level=None) as conn:
        conn.execute("BEGIN")
        at_version(conn, 6)
        for n in range(5):  # AUTOINCREMENT numbers them 1..5
            conn.execute(
                "INSERT INTO events (at, at_ts, kind, body) VALUES ('t', ?, 'mo', ?)",
                (1000.0 + n, f'{{"n":{n}}}'),
            )
        conn.execute("DELETE FROM events WHERE seq >= 4")  # the newest pruned: 4, 5 stay taken
        conn.execute("COMMIT")

    async def body(store: SqliteStore) -> None:
        assert [(e.seq, e.body) for e in await store.read_events("x")] == [
            (1, {"n": 0}),
            (2, {"n": 1}),
            (3, {"n": 2}),
        ]
        assert await store.last_event_seq() == 5
        assert await store.append_event("mo", {"n": 5}) == 6

    run(body, db)
    with sqlite3.connect(db) as conn:
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()[0]
        assert "AUTOINCREMENT" not in sql


def test_the_writers_clock_mark_is_saved_ahead_not_at_every_commit(db: Path) -> None:
    lead = sqlite_store.CLOCK_LEAD_US

    def saved() -> int:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT us FROM writer_clock").fetchone()[0])

    async def steps(store: SqliteStore, times: tuple[float, ...]) -> None:
        for ts in times:  # each its own commit
            await store.accept(msg(int(ts * 10)), now=ts)

    run(lambda s: steps(s, (1000.0, 1000.2, 1000.9)), db)
    assert saved() == 1000_000_000 + lead  # one write for the three
    run(lambda s: steps(s, (1001.5,)), db)
    assert saved() == 1001_500_000 + lead


def test_matched_receipts_are_appended_to_the_event_log(db: Path) -> None:
    async def body(store: SqliteStore) -> None:
        mid, _ = await store.accept(msg(1))
        await store.record_submit(mid, 1, "c")
        await store.record_submit_resp(mid, 1, "c", 0, "7", "7")
        await store.record_receipt("c", "7", "delivered", "000")
        events = await store.read_events("router")
        assert [(e.kind, e.body["message_id"], e.body["state"]) for e in events] == [
            ("receipt", mid, "delivered")
        ]

    run(body, db)


# ---------------------------------------------------------------------------- restart


def test_pending_after_restart(db: Path) -> None:
    async def before(store: SqliteStore) -> list[str]:
        ids = [(await store.accept(msg(n, parts_total=2)))[0] for n in range(3)]
        await store.record_submit(ids[0], 1, "c")
        await store.record_submit_resp(ids[0], 1, "c", 0, "1", "1")
        await store.record_submit(ids[0], 2, "c")  # resp never came
        await store.record_submit(ids[1], 1, "c")
        await store.record_submit_resp(ids[1], 1, "c", 0, "2", "2")
        await store.record_submit(ids[1], 2, "c")
        await store.record_submit_resp(ids[1], 2, "c", 0, "3", "3")
        return ids

    ids = run(before, db)
    pending = run(lambda s: s.pending_after_restart(), db)
    assert [(p.message_id, p.part_no, p.state) for p in pending] == [
        (ids[0], 2, "submitted"),
        (ids[2], 1, "pending"),
        (ids[2], 2, "pending"),
    ]


CRASH_CHILD = """
import asyncio, sys
from gateway.store.sqlite_store import NewMessage, SqliteStore

async def main():
    store = SqliteStore(sys.argv[1], synchronous="normal")
    async def one(n):
        mid, _ = await store.accept(NewMessage("crash", "SRC", "+15550100", b"x" * 40,
                                               client_ref=str(n)))
        sys.stdout.write(mid + "\\n")
        sys.stdout.flush()
    n = 0
    while True:
        await asyncio.gather(*(one(n + k) for k in range(64)))
        n += 64

asyncio.run(main())
"""


def test_kill_9_loses_nothing_that_was_acknowledged(db: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASH_CHILD, str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    printed: list[str] = []
    deadline = time.monotonic() + 20
    try:
        while len(printed) < 3000 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                pytest.fail(f"child exited early: {proc.stderr.read().decode()}")
            printed.append(line.decode())
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: it never stops accepting on its own
    tail = proc.stdout.read().decode()  # whatever it printed before dying
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    printed.extend(line for line in tail.splitlines(keepends=True))
    acknowledged = [line.strip() for line in printed if line.endswith("\n")]
    assert len(acknowledged) >= 3000

    async def check(store: SqliteStore) -> int:
        missing = [mid for mid in acknowledged if await store.get_message(mid) is None]
        assert missing == []
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]

    assert run(check, db) >= len(acknowledged)


class _Boom(BaseException):
    """Not an Exception: stands for a bug that escapes a job."""


def test_a_dead_writer_fails_every_caller_instead_of_hanging(db: Path) -> None:
    async def body(store: SqliteStore) -> None:
        before = asyncio.ensure_future(store.accept(msg(1)))
        await asyncio.sleep(0)

        def explode(conn: sqlite3.Connection) -> None:
            raise _Boom

        with pytest.raises(Exception, match="Boom"):
            await store._submit(explode)
        (outcome,) = await asyncio.gather(before, return_exceptions=True)
        if isinstance(outcome, tuple):  # committed in an earlier batch: it must be there
            assert await store.get_message(outcome[0]) is not None
        else:
            assert isinstance(outcome, StoreError)
        with pytest.raises(StoreClosed):
            await store.accept(msg(2))

    run(body, db, group_commit_ms=50)


def test_schema_is_versioned_and_a_newer_database_is_refused(db: Path) -> None:
    run(lambda s: s.append_event("x", {}), db)
    run(lambda s: s.append_event("x", {}), db)  # reopening applies nothing twice
    with sqlite3.connect(db) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version")]
        assert versions == list(range(1, schema.SCHEMA_VERSION + 1))
        conn.execute("INSERT INTO schema_version VALUES (99, 0)")
    with pytest.raises(RuntimeError, match="newer"):
        SqliteStore(str(db))


def test_v1_database_is_migrated_and_keeps_its_messages(db: Path) -> None:
    with sqlite3.connect(db, isolation_level=None) as conn:
        conn.execute("BEGIN")
        for statement in schema._statements(schema.MIGRATIONS[0]):
            conn.execute(statement)
        conn.execute(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
        )
        conn.execute("INSERT INTO schema_version VALUES (1, 0)")
        conn.execute(
            "INSERT INTO messages VALUES ('m1', 'c', NULL, NULL, 'S', '1', 0, x'41', 'accepted',"
            " NULL, 1, 't', 't')"
        )
        conn.execute("COMMIT")

    async def body(store: SqliteStore) -> None:
        old = await store.get_message("m1")
        assert old is not None and old.text is None and old.concat_ref is None
        assert (old.state, old.updated_at) == ("accepted", "t")  # derived: no parts, no history
        assert (old.validity_s, old.priority, old.expires_at()) == (None, None, None)
        mid, _ = await store.accept(
            NewMessage("c", "S", "1", b"hi", text="hi", concat_ref=7, validity_s=60, priority=1),
            now=1000.0,
        )
        new = await store.get_message(mid)
        assert new is not None and (new.text, new.concat_ref) == ("hi", 7)
        assert (new.validity_s, new.priority, new.expires_at()) == (60, 1, 1060.0)

    run(body, db)


def test_event_listeners_hear_each_commit_that_appends(db: Path) -> None:
    async def body(store: SqliteStore) -> list[int]:
        heads: list[int] = []
        heard = asyncio.Event()

        def listener(head: int, events: list[Event]) -> None:
            assert events and events[-1].seq == head
            heads.append(head)
            heard.set()

        store.add_event_listener(asyncio.get_running_loop(), listener)
        for kind in ("sms.inbound", "receipt"):
            heard.clear()
            await store.append_event(kind, {"n": 1})
            await asyncio.wait_for(heard.wait(), 5)
        heard.clear()
        await store.accept(msg(1))  # a commit without events announces nothing new
        await store.append_event("sms.inbound", {"n": 2})
        await asyncio.wait_for(heard.wait(), 5)
        return heads

    assert run(body, db) == [1, 2, 3]


def test_events_heard_live_equal_the_events_read_back(db: Path) -> None:
    """Subscribers following the log live are served what the listener heard; it must be what
    a reader of the log gets for the same seqs, for every kind of event and body."""

    async def body(store: SqliteStore) -> tuple[list[Event], list[Event]]:
        heard: list[Event] = []
        store.add_event_listener(asyncio.get_running_loop(), lambda _h, ev: heard.extend(ev))
        first, _ = await store.accept(msg(1, parts_total=2, carrier="c"))
        await store.record_submit(first, 1, "c")
        await store.record_receipt("c", "ab", "delivered", "000", {"stat": "DELIVRD"}, ttl_s=60)
        await store.record_submit_resp(first, 1, "c", 0, "AB", "ab")  # applies the early one
        await store.record_submit(first, 2, "c")
        await store.record_submit_resp(first, 2, "c", 0, "CD", "cd")
        await store.record_receipt("c", "cd", "undeliverable", "012", {"stat": "UNDELIV"})
        second, _ = await store.accept(msg(2))
        await store.record_expired(second, {"reason": "validity", "validity_s": 5})
        await store.append_event("sms.inbound", {"missing": (2, 3), "n": 1.5, "ok": True})
        for _ in range(100):
            if len(heard) == 4:
                break
            await asyncio.sleep(0.01)
        return heard, await store.read_events("reader", 0, 100)

    heard, read = run(body, db)
    assert [e.kind for e in read] == ["receipt", "receipt", "expired", "sms.inbound"]
    assert heard == read
    assert read[3].body["missing"] == [2, 3]  # a caller's tuple, as the log keeps it


def test_checkpoints_run_beside_the_writer(db: Path) -> None:
    """The checkpointer thread copies the WAL into the database file beside the writer, whose
    own checkpoints (a COMMIT crossing the threshold copies and syncs while jobs wait) come
    only every WAL_RESTART_FRAMES, not SQLite's default 1,000."""

    async def body(store: SqliteStore) -> None:
        size_before = db.stat().st_size
        for n in range(0, 600, 50):
            await asyncio.gather(*(store.accept(msg(n + k)) for k in range(50)))
        for _ in range(300):
            if store.checkpoints > 0:
                break
            await asyncio.sleep(0.01)
        assert store.checkpoints >= 1 and store.wal_frames > 0
        assert db.stat().st_size > size_before  # the pages reached the database file
        with sqlite3.connect(db) as conn:
            assert len(conn.execute("SELECT id FROM messages").fetchall()) == 600

    run(body, db, checkpoint_interval_s=0.02)
    from gateway.store.sqlite_store import WAL_RESTART_FRAMES

    assert WAL_RESTART_FRAMES > 1000
    store = SqliteStore(str(db))
    try:
        writer = store._connect(read_only=False)
        assert writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == WAL_RESTART_FRAMES
        assert writer.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        writer.close()
    finally:
        store.close()


def test_a_new_database_gets_8_kib_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    new, old = tmp_path / "new.db", tmp_path / "old.db"
    with sqlite3.connect(old) as conn:  # made before this version: SQLite's 4 KiB default
        conn.execute("PRAGMA page_size=4096")
        conn.execute("CREATE TABLE placeholder (x)")

    async def accept_and_read(store: SqliteStore) -> Any:
        mid, _ = await store.accept(msg(1))
        return await store.get_message(mid)

    for path in (new, old):
        assert run(accept_and_read, path) is not None
    for path, size in ((new, sqlite_store.PAGE_SIZE), (old, 4096)):
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA page_size").fetchone()[0] == size
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert sqlite_store.PAGE_SIZE == 8192


def test_the_wal_starts_over_under_a_steady_stream_of_writes(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PASSIVE checkpoints alone never let a busy WAL start over; past the restart threshold
    the writer's own checkpoint does, and the file is cut back to the size limit."""
    from gateway.store import sqlite_store

    monkeypatch.setattr(sqlite_store, "WAL_RESTART_FRAMES", 50)
    monkeypatch.setattr(sqlite_store, "WAL_SIZE_LIMIT", 256 * 1024)
    wal = Path(f"{db}-wal")

    async def body(store: SqliteStore) -> int:
        largest = 0

        async def watch() -> None:
            nonlocal largest
            while True:
                largest = max(largest, wal.stat().st_size)
                await asyncio.sleep(0.002)

        watcher = asyncio.ensure_future(watch())
        for n in range(0, 12000, 2000):  # queued at once: the writer is never idle
            await asyncio.gather(*(store.accept(msg(n + k)) for k in range(2000)))
        watcher.cancel()
        return largest

    largest = run(body, db, checkpoint_interval_s=0.01)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 12000
    assert db.stat().st_size > 4 * 256 * 1024  # far more went through the WAL than it holds
    assert largest < 3 * 1024 * 1024, largest


def test_then_callbacks_get_results_and_errors_and_a_raising_one_spoils_nothing(
    db: Path,
) -> None:
    async def body(store: SqliteStore) -> None:
        loop = asyncio.get_running_loop()
        reported: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: reported.append(context))
        got: list[tuple[str, Any]] = []
        done = asyncio.Event()

        def broken(error: BaseException | None, result: Any) -> None:
            raise RuntimeError("a caller's bug")

        def record(name: str) -> Any:
            def then(error: BaseException | None, result: Any) -> None:
                got.append((name, error if error is not None else result))
                if len(got) == 3:
                    done.set()

            return then

        assert store.accept(msg(1), then=record("first")) is None
        store.accept(msg(2), then=broken)
        store.record_submit("no-such-message", 1, "c", then=record("unknown"))
        store.accept(msg(3), then=record("third"))
        await asyncio.wait_for(done.wait(), 5)
        by_name = dict(got)
        assert by_name["first"][1] is True and by_name["third"][1] is True
        assert isinstance(by_name["unknown"], UnknownPart)
        assert [c["message"] for c in reported] == ["store write callback failed"]
        assert await store.get_message(by_name["third"][0]) is not None

    run(body, db, group_commit_ms=20)


def test_the_checkpointer_backs_off_while_nothing_is_written(db: Path) -> None:
    async def body(store: SqliteStore) -> int:
        await store.accept(msg(1))
        await asyncio.sleep(0.6)  # idle: 10 ms, 20, 40 ... not one run every 10 ms
        idle = store.checkpoint_runs
        before = store.checkpoints
        await store.accept(msg(2))  # and what is written after a quiet spell is still copied
        for _ in range(300):
            if store.checkpoints > before:
                break
            await asyncio.sleep(0.01)
        assert store.checkpoints > before
        return idle

    idle_runs = run(body, db, checkpoint_interval_s=0.01)
    assert idle_runs <= 12  # 60 at a fixed 10 ms


# ---------------------------------------------------------------------------- history (schema v5)


def test_steps_overwritten_by_later_ones_stay_in_the_history(db: Path) -> None:
    """A part sent again after a throttled resp, and an intermediate receipt followed by the
    final one: the columns hold the last of each step, the history every one, in order."""

    async def body(store: SqliteStore) -> None:
        mid, _ = await store.accept(msg(1), now=1000.0)
        await store.record_submit(mid, 1, "carrier-a", now=1000.0)
        await store.record_submit_resp(mid, 1, "carrier-a", 0x58, None, None, now=1000.0)
        await store.record_submit(mid, 1, "carrier-b", now=1000.0)  # the same millisecond
        await store.record_submit_resp(mid, 1, "carrier-b", 0, "AB12", "ab12", now=1001.0)
        await store.record_receipt("carrier-b", "ab12", "enroute", None, {"stat": "ENROUTE"})
        await store.record_receipt("carrier-b", "ab12", "delivered", "000", {"stat": "DELIVRD"})
        record = await store.get_message(mid)
        assert record is not None and record.state == "delivered"
        steps = [(h.event, h.detail.get("carrier"), h.detail.get("status")) for h in record.history]
        assert steps == [
            ("accepted", None, None),
            ("submitted", "carrier-a", None),
            ("resp", "carrier-a", 0x58),
            ("submitted", "carrier-b", None),
            ("resp", "carrier-b", 0),
            ("receipt", "carrier-b", None),
            ("receipt", "carrier-b", None),
        ]
        assert [h.seq for h in record.history] == list(range(1, 8))
        assert [h.detail.get("stat") for h in record.history[5:]] == ["ENROUTE", "DELIVRD"]
        assert record.history[4].detail == {
            "part": 1,
            "carrier": "carrier-b",
            "status": 0,
            "carrier_message_id": "AB12",
        }
        assert record.history[0].detail == {"client_ref": "ref-1", "parts_total": 1}
        assert record.updated_at == record.history[-1].at
        # only what the columns could not hold became a row: the first attempt, the first receipt
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT event FROM history WHERE message_id = ?", (mid,))
            assert sorted(r[0] for r in rows) == ["receipt", "resp", "submitted"]

    run(body, db)


def test_history_order_survives_a_restart_with_the_clock_gone_back(db: Path) -> None:
    async def first(store: SqliteStore) -> str:
        mid, _ = await store.accept(msg(1), now=2000.0)
        await store.record_submit(mid, 1, "c", now=2000.0)
        return mid

    mid = run(first, db)

    async def second(store: SqliteStore) -> list[str]:
        await store.record_submit(mid, 1, "c", now=1000.0)  # after a restart, clock set back
        await store.record_submit_resp(mid, 1, "c", 0, "1", "1", now=1000.0)
        record = await store.get_message(mid)
        assert record is not None
        return [f"{h.event}@{h.at[11:19]}" for h in record.history]

    assert run(second, db) == [
        "accepted@00:33:20",
        "submitted@00:33:20",
        "submitted@00:16:40",
        "resp@00:16:40",
    ]


def test_history_written_before_v5_is_read_once_and_continued(db: Path) -> None:
    """A message in flight across the upgrade: its old rows are read as they are, and the
    steps written after the upgrade follow them, nothing twice."""
    with sqlite3.connect(db, isolation_level=None) as conn:
        conn.execute("BEGIN")
        at_version(conn, 4)
        conn.execute(
            "INSERT INTO messages (id, client_id, client_ref, source_addr, dest_addr,"
            " data_coding, payload, carrier, parts_total, created_at)"
            " VALUES ('m1', 'c', 'r', 'S', '1', 0, x'41', NULL, 1, '2026-01-01T00:00:00.000Z')"
        )
        conn.execute(
            "INSERT INTO message_parts (message_id, part_no, state, carrier, submitted_at)"
            " VALUES ('m1', 1, 'submitted', 'c', '2026-01-01T00:00:01.000Z')"
        )
        for seq, at, event, detail in (
            (1, "2026-01-01T00:00:00.000Z", "accepted", '{"client_ref":"r","parts_total":1}'),
            (2, "2026-01-01T00:00:01.000Z", "submitted", '{"part":1,"carrier":"c"}'),
        ):
            conn.execute("INSERT INTO history VALUES ('m1', ?, ?, ?, ?)", (seq, at, event, detail))
        conn.execute("COMMIT")

    async def body(store: SqliteStore) -> None:
        await store.record_submit_resp("m1", 1, "c", 0, "77", "77", now=1767225602.0)
        assert await store.record_receipt("c", "77", "delivered", "000") == ReceiptMatch("m1", 1)
        record = await store.get_message("m1")
        assert record is not None and record.state == "delivered"
        assert [(h.seq, h.event) for h in record.history] == [
            (1, "accepted"),
            (2, "submitted"),
            (3, "resp"),
            (4, "receipt"),
        ]
        assert record.history[1].at == "2026-01-01T00:00:01.000Z"
        assert record.history[2].detail["carrier_message_id"] == "77"

    run(body, db)


@pytest.mark.parametrize("kept", [10_000, 1, 0])
def test_receipts_find_the_same_part_with_or_without_the_writers_memory(
    db: Path, kept: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer remembers recently answered parts; whatever it remembers or has dropped, a
    receipt finds what the index would: the newest part with the id, never a part since sent
    again, and an intermediate receipt leaves the final one still to be matched."""
    from gateway.store import sqlite_store

    monkeypatch.setattr(sqlite_store, "ANSWERED_KEPT", kept)

    async def body(store: SqliteStore) -> None:
        a, _ = await store.accept(msg(1))
        b, _ = await store.accept(msg(2))
        c, _ = await store.accept(msg(3))
        for mid in (a, b, c):
            await store.record_submit(mid, 1, "k")
        await store.record_submit_resp(a, 1, "k", 0, "1", "1")
        await store.record_submit_resp(b, 1, "k", 0, "2", "2")
        await store.record_submit_resp(c, 1, "k", 0, "1", "1")  # the carrier reused id 1
        assert await store.record_receipt("k", "1", "enroute") == ReceiptMatch(c, 1)
        assert await store.record_receipt("k", "1", "delivered") == ReceiptMatch(c, 1)
        await store.record_submit(b, 1, "k")  # sent again: id 2 no longer names it
        assert await store.record_receipt("k", "2", "delivered") is None
        await store.record_submit_resp(b, 1, "k", 0, "3", "3")
        assert await store.record_receipt("k", "3", "delivered") == ReceiptMatch(b, 1)
        d, _ = await store.accept(msg(4))
        await store.record_submit(d, 1, "k")
        assert await store.record_receipt("k", "9", "delivered") is None  # before its resp
        assert await store.record_submit_resp(d, 1, "k", 0, "9", "9") == 1
        states = [(await store.get_message(m)).state for m in (a, b, c, d)]  # type: ignore[union-attr]
        assert states == ["in_flight", "delivered", "delivered", "delivered"]
        # every part with its final receipt in is forgotten: the memory holds no more than that
        assert not store._answered and not store._answered_key

    run(body, db)


def test_a_forked_child_makes_ids_of_its_own() -> None:
    new_message_id()  # the parent has random bytes read ahead
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, new_message_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read), os.close(write)
    mine = new_message_id()
    assert child[24:] != mine[24:]  # the random tail differs, whatever the clock did


def test_message_ids_are_the_canonical_form_of_the_same_uuid7() -> None:
    """new_message_id builds the string field by field: it must be exactly str(uuid7()) for
    the same generator state (and ids stay strictly increasing across both forms)."""
    from gateway.store import ids as gen

    compared = 0
    for _ in range(3000):
        state = (gen._last_ms, gen._counter, gen._random, gen._random_at)
        made = new_message_id(1_700_000_000_000)  # a past time: the counter runs on
        refilled = gen._random is not state[2]  # a new random block: not replayable
        gen._last_ms, gen._counter, gen._random, gen._random_at = state
        again = str(uuid7(1_700_000_000_000))
        if not refilled:
            assert made == again
            compared += 1
    assert compared > 2900
    later = [new_message_id() for _ in range(100)]
    assert later == sorted(later) and len(set(later)) == 100
    assert all(uuid.UUID(m).version == 7 and uuid.UUID(m).variant == uuid.RFC_4122 for m in later)


def test_opt_outs_keep_the_first_report_and_survive_a_restart(db: Path) -> None:
    async def first(store: SqliteStore) -> list[Any]:
        return [
            await store.record_opt_out("+447700900123", "twilio:21610", {"sid": "SM1"}, now=1000.0),
            await store.record_opt_out("+447700900123", "twilio:21610", {"sid": "SM2"}),
            await store.record_opt_out("+12025550123", "telnyx:40300", {}),
            await store.opted_out(),
        ]

    assert run(first, db) == [True, False, True, {"+447700900123", "+12025550123"}]

    async def second(store: SqliteStore) -> list[Any]:
        return [
            await store.opted_out(),
            await store.remove_opt_out("+12025550123"),
            await store.remove_opt_out("+12025550123"),
            await store.opted_out(),
        ]

    both = {"+447700900123", "+12025550123"}
    assert run(second, db) == [both, True, False, {"+447700900123"}]
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT source, detail, at FROM opt_outs").fetchone()
    assert row == ("twilio:21610", '{"sid":"SM1"}', "1970-01-01T00:16:40.000Z")
