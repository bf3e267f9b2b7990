"""The compiled writer steps (`native/store_writer.pyx`) against the store's own Python steps:
the same script of accepts, responses and receipts through a store with each gives the same
results, rows, events and writer memory."""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gateway.carriers.inbound import InboundHandler
from gateway.smpp.pdu import DeliverSm
from gateway.smpp.receipts import ReceiptState
from gateway.store import sqlite_store
from gateway.store.sqlite_store import NewMessage, ReceiptMatch, SqliteStore

pytestmark = pytest.mark.skipif(
    os.environ.get("GATEWAY_PURE", "") not in ("", "0"), reason="compares with the native build"
)

T0 = 1_790_000_000.0
TABLES = ("messages", "message_parts", "history", "events", "unmatched_receipts", "writer_clock")


def message(n: int, **fields: Any) -> NewMessage:
    base: dict[str, Any] = {
        "client_id": "acme",
        "source_addr": "ACME",
        "dest_addr": f"+44770090{n:04d}",
        "payload": f"hello {n}".encode(),
        "text": f"hello {n}",
        "client_ref": f"ref-{n}",
        "carrier": "sim0",
        "first_part_submitted": True,
    }
    base.update(fields)
    return NewMessage(**base)


def receipt(norm: str, state: Any = "delivered", err: Any = "000", **detail: Any) -> tuple:
    shape = detail or {"stat": "DELIVRD", "carrier_message_id_raw": norm.upper()}
    return ("receipt", norm, state, err, shape, None)


async def script(store: SqliteStore) -> list[Any]:
    """Every branch of the steps: the common cases and each one they hand back."""
    out: list[Any] = []

    def answers(carrier: str, batch: list[tuple], now: float) -> asyncio.Future[Any]:
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        store.record_answers(
            carrier, batch, now=now, then=lambda e, r: done.set_result(("error", repr(e), r))
        )
        return done

    accepted: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    items = [
        (message(1), T0),
        (message(2, parts_total=3), T0),  # parts 2 and 3 pending
        (message(3, first_part_submitted=False), T0 + 0.0000001),  # the clock ticks on
        (message(4, idempotency_key="k4"), T0),  # the store's own step
        (message(5, text=None, payload=b"\x00\x01", data_coding=4), T0 - 5),  # clock went back
        (message(6), T0 + 1),
        (message(7), T0),
        (message(8), T0),
        (message(9), T0),
    ]
    store.accept_many(items, then=lambda e, r: accepted.set_result((repr(e), r)))
    error, results = await accepted
    out.append(error)
    ids = [mid for mid, _ in results]
    out.append([created for _, created in results])
    m1, m2, m3, m4, m5, m6, m7, m8, m9 = ids
    out.append(
        await answers(
            "sim0",
            [
                ("resp", m1, 1, 0, "1A", "1a"),
                ("resp", m2, 1, 0, "2B", "2b"),
                ("resp", m3, 1, 0x58, None, None),  # throttled: rejected, nothing remembered
                ("resp", m4, 1, 0, None, None),  # accepted without an id
                ("resp", "no-such", 1, 0, "77", "77"),  # unknown part
                ("resp", m5, 1, 0, "5E", "5e"),
                ("resp", m6, 1, 0, "6F", "6f"),
                receipt("1a"),
                receipt("2b", "enroute", None),  # intermediate: the part stays remembered
                receipt("2b", "undeliverable", "123"),  # final: the enroute one to history
                receipt("99"),  # nobody's: kept unmatched
                receipt("5e", stat='quote " back \\ slash', carrier_message_id_raw="é€\u2028"),
                receipt("6f", stat=None, carrier_message_id_raw=None),
                ("resp", m7, 1, 0, "99", "99"),  # the unmatched one waits for this id
                receipt("5e", "delivered", "000", stat="again"),  # one key: the store's step
                receipt("6f", 7),  # a state that is no str: read as str(7), as the store does
                receipt("6f", ReceiptState.ENROUTE),  # what the carrier links give
                receipt("6f", "delivered", 5),  # an err that is no str: the store's step
                receipt("6f", stat=1, carrier_message_id_raw="x"),  # a stat that is no str
                receipt("6f", carrier_message_id_raw="x", stat="DELIVRD"),  # other key order
                receipt("6f", stat="A", carrier_message_id_raw="B", extra="C"),  # three keys
                ("resp", m1, 1, 0, "1A", "1a"),  # a second resp: the first to history
                ("resp", m8, 1, 0, "2b", "2b"),  # an id used again: the newest part has it
                receipt("2b"),
                ("resp", m9, 1, 1, "9", "9"),  # rejected with an id
            ],
            T0 + 1,
        )
    )
    out.append(await answers("sim0", [receipt("1a", "delivered")], T0 + 2))  # final twice
    out.append(await answers("sim0", [("short", "1a")], T0 + 2))  # unreadable: the job fails
    out.append(
        await answers("sim1", [("resp", m9, 2, 0, "9", "9"), receipt("9")], T0 + 3)  # pending
    )
    out.append([(e.seq, e.at, e.kind, e.body) for e in await store.read_events("x", limit=1000)])
    out.append(list(store._answered.items()))
    out.append(sorted(store._answered_key.items()))
    return out


def _comparable(value: Any) -> Any:
    """Exceptions as (class, message): two raised alike are equal."""
    if isinstance(value, BaseException):
        return (type(value).__name__, str(value))
    if isinstance(value, list | tuple):
        return type(value)(_comparable(v) for v in value)
    return value


def run_script(path: Path, *, native: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    counter = itertools.count(1)
    monkeypatch.setattr(sqlite_store, "new_message_id", lambda: f"m-{next(counter):04d}")
    real_steps = sqlite_store._writer_steps
    monkeypatch.setattr(sqlite_store, "_writer_steps", real_steps if native else (lambda hot: None))

    async def main() -> Any:
        store = SqliteStore(str(path))
        try:
            return await script(store)
        finally:
            await store.aclose()

    result = _comparable(asyncio.run(main()))
    with sqlite3.connect(path) as conn:
        rows = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in TABLES}
    monkeypatch.undo()
    return result, rows


@pytest.mark.parametrize("kept", [10_000, 2])
def test_the_compiled_steps_write_what_the_python_ones_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kept: int
) -> None:
    steps = sqlite_store._writer_steps(type("Hot", (), {"backend": "native"})())
    assert steps is not None, "the native writer steps are not built (scripts/setup.sh)"
    with monkeypatch.context() as patch:
        patch.setattr(sqlite_store, "ANSWERED_KEPT", kept)
        native = run_script(tmp_path / "native.db", native=True, monkeypatch=patch)
    with monkeypatch.context() as patch:
        patch.setattr(sqlite_store, "ANSWERED_KEPT", kept)
        python = run_script(tmp_path / "python.db", native=False, monkeypatch=patch)
    assert native == python
    results, rows = native
    # the script went where it should: something of each kind was written and read back
    assert results[1] == [True] * 9
    assert len(rows["events"]) >= 8 and rows["history"]
    assert [r[1:3] for r in rows["unmatched_receipts"]] == [("sim1", "9")]  # "99" was applied
    assert any("quote" in body for *_, body in rows["events"])


class _Hot:
    backend = "native"

    def run(self, which: int, params: tuple) -> int:
        return 1


def test_a_receipt_as_the_carrier_links_give_it_takes_the_compiled_step() -> None:
    """The answer `InboundHandler` queues for a receipt (a ReceiptState, the stat and raw id)
    is taken by the compiled step, not handed back (which would only cost)."""
    queued: list[tuple] = []
    handler = InboundHandler(
        "sim0", "hex", None, lambda: 0.0, queue_answer=lambda answer, then: queued.append(answer)
    )
    text = b"id:1A sub:001 dlvrd:001 submit date:2611282101 done date:2611282101 stat:DELIVRD"
    handler.handle(None, DeliverSm(esm_class=0x04, short_message=text + b" err:000 text:x"))
    (answer,) = queued
    steps = sqlite_store._writer_steps(_Hot())
    store = type("Store", (), {})()
    store._answered = {("sim0", "1a"): ReceiptMatch("m1", 1)}
    store._answered_key = {("m1", 1): ("sim0", "1a")}
    conn = type("Conn", (), {})()
    conn.hot, conn.clock_us, conn.appended, conn.event_head = _Hot(), 0, [], 0
    assert steps.write_receipt(store, conn, "sim0", answer, T0, "t") == ReceiptMatch("m1", 1)
    assert conn.appended[0].body["state"] == "delivered" and store._answered == {}
