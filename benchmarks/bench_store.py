"""Message store benchmark: accepts/s and commits per 10,000 accepts, synchronous=normal vs full.

    .venv/bin/python benchmarks/bench_store.py [--accepts N] [--dir DIR] [--group-commit-ms MS]
    .venv/bin/python benchmarks/bench_store.py --jobs N
    .venv/bin/python benchmarks/bench_store.py --steps N [--repeats R]

--jobs: what one message costs the store, CPU per message: the writer's four jobs (accept,
submit, resp, receipt) called directly on one connection, N of each, committed every 256 (the
job code and SQLite alone), beside the same four writes through the store (futures, the writer
thread, group commit: what the daemon pays). The ratio is the hand-off's share.

--steps: the writer's steps as the daemon runs them (accept_many, then record_answers with the
resps and with the receipts as the carrier links give them, 50 messages to a transaction), with
the store's Python steps beside the compiled ones (native/store_writer.pyx), alternating, the
best of R replays (default 7) of each: the ratio is the compiled steps' saving.

Each run opens a fresh database (in a temporary directory under DIR, default benchmarks/, so
the figures are for the disk the repository is on, not a tmpfs) and has C client coroutines
each awaiting one `accept` after the other until N accepts are done, on uvloop when installed.
The accept is a one-part 120-octet message with a client reference; group commit is the
store default (0 ms: commit as soon as the queue is empty; 256 rows at most) unless
--group-commit-ms says otherwise. Concurrency 1 runs N/5 accepts (with a window, a lone caller
waits for it each time); commits are scaled to 10,000 accepts.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from gateway.smpp.receipts import ReceiptState  # noqa: E402
from gateway.store.sqlite_store import NewMessage, SqliteStore, _writer_steps  # noqa: E402
from gateway.store.statements import load_statements  # noqa: E402

CONCURRENCY = (1, 64, 1024)
SYNC_MODES = ("normal", "full")


async def one_run(
    path: str, synchronous: str, concurrency: int, total: int, window_ms: float
) -> tuple[float, int]:
    store = SqliteStore(path, synchronous=synchronous, group_commit_ms=window_ms)  # type: ignore[arg-type]
    payload = b"x" * 120
    counter = iter(range(total))

    async def client() -> None:
        for n in counter:
            await store.accept(
                NewMessage("bench", "BENCH", "+447700900123", payload, client_ref=str(n))
            )

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    commits = store.commits
    await store.aclose()
    return total / elapsed, commits


class _Capture(SqliteStore):
    """A store whose writes are kept as job functions instead of being queued."""

    captured: list

    def _submit(self, fn, *, admission=False, then=None):  # type: ignore[no-untyped-def,override]
        self.captured.append(fn)


def _message(**fields: Any) -> NewMessage:
    return NewMessage(
        "bench",
        "BENCH",
        "447700900123",
        b"x" * 120,
        carrier="sim",
        text="x" * 120,
        concat_ref=1,
        **fields,
    )


def jobs_direct(path: str, count: int) -> dict[str, float]:
    """CPU us per job of each kind, the jobs run in this thread on a writer connection."""
    store = _Capture(path)
    store.captured = []
    conn = store._connect(read_only=False)
    out: dict[str, float] = {}
    ids: list[str] = []
    makers = {
        "accept": lambda n: store.accept(_message()),
        "submit": lambda n: store.record_submit(ids[n], 1, "sim"),
        "resp": lambda n: store.record_submit_resp(ids[n], 1, "sim", 0, f"{n:x}", f"{n:x}"),
        "receipt": lambda n: store.record_receipt(
            "sim", f"{n:x}", "delivered", "000", {"stat": "DELIVRD"}
        ),
    }
    for kind, make in makers.items():
        store.captured.clear()
        for n in range(count):
            make(n)
        jobs = list(store.captured)
        results = []
        conn.execute("BEGIN IMMEDIATE")
        start = time.process_time()
        for n, job in enumerate(jobs):
            results.append(job(conn))
            if n % 256 == 255:
                conn.flush_history()
                conn.execute("COMMIT")
                conn.execute("BEGIN IMMEDIATE")
        conn.flush_history()
        conn.execute("COMMIT")
        out[kind] = (time.process_time() - start) / count * 1e6
        if kind == "accept":
            ids = [message_id for message_id, _ in results]
    conn.close()
    store.close()
    return out


async def jobs_through_store(path: str, count: int) -> float:
    """CPU us per message for the same four writes through the store, 500 messages at a time."""
    store = SqliteStore(path)

    async def one(n: int) -> None:
        message_id, _ = await store.accept(_message())
        await store.record_submit(message_id, 1, "sim")
        await store.record_submit_resp(message_id, 1, "sim", 0, f"{n:x}", f"{n:x}")
        await store.record_receipt("sim", f"{n:x}", "delivered", "000", {"stat": "DELIVRD"})

    await asyncio.gather(*(one(n) for n in range(500)))  # warm-up
    start = time.process_time()  # this process: the loop and the store's threads
    for base in range(500, 500 + count, 500):
        await asyncio.gather(*(one(n) for n in range(base, base + 500)))
    used = time.process_time() - start
    await store.aclose()
    return used / count * 1e6


def jobs_report(workdir: Path, count: int, runner: Any) -> None:
    direct = jobs_direct(str(workdir / "direct.db"), count)
    through = runner(jobs_through_store(str(workdir / "store.db"), count))
    total = sum(direct.values())
    print("| writes of one message | CPU us |")
    print("|---|---|")
    for kind, us in direct.items():
        print(f"| {kind} job, called directly | {us:.1f} |")
    print(f"| all four, called directly | {total:.1f} |")
    print(f"| all four through the store (futures, writer thread) | {through:.1f} |")
    print(f"| ratio through / direct | {through / total:.2f}x |")


STEPS_BATCH = 50  # messages per transaction in the steps replay (about what the daemon commits)
STEPS_KINDS = ("accept", "resp", "receipt", "commit")


def steps_replay(path: str, count: int, compiled: bool) -> dict[str, float]:
    """CPU us per message of each writer step as the daemon runs them: `accept_many` (part 1
    recorded as submitted), then `record_answers` with the resps and with the receipts as the
    carrier links give them (a ReceiptState, the stat and raw id), STEPS_BATCH messages to a
    transaction, on the writer's native statements; with the store's Python steps or the
    compiled ones (native/store_writer.pyx)."""
    SqliteStore(path).close()  # the schema
    store = _Capture(path)
    store.captured = []
    store._answered = collections.OrderedDict()
    store._answered_key = {}
    conn = store._connect(read_only=False)
    conn.hot = load_statements(conn, path)
    conn.steps = _writer_steps(conn.hot) if compiled else None
    if compiled and conn.steps is None:
        raise SystemExit("the compiled writer steps are not built (scripts/setup.sh)")
    store._reload_caches(conn)
    used = dict.fromkeys(STEPS_KINDS, 0)
    clock = time.thread_time_ns

    def timed(kind: str, job: Any) -> Any:
        start = clock()
        result = job(conn)
        used[kind] += clock() - start
        return result

    items = [(_message(first_part_submitted=True), None) for _ in range(STEPS_BATCH)]
    for base in range(0, count, STEPS_BATCH):
        conn.execute("BEGIN IMMEDIATE")
        store.captured.clear()
        store.accept_many(items, then=lambda error, result: None)
        ids = [message_id for message_id, _ in timed("accept", store.captured[0])]
        ref = [f"{base + n:x}" for n in range(len(ids))]
        resps = [("resp", mid, 1, 0, r.upper(), r) for mid, r in zip(ids, ref, strict=True)]
        receipts = [
            ("receipt", r, ReceiptState.DELIVERED, "000", {"stat": "DELIVRD",
             "carrier_message_id_raw": r.upper()}, None)
            for r in ref
        ]  # fmt: skip
        for kind, answers in (("resp", resps), ("receipt", receipts)):
            store.captured.clear()
            store.record_answers("sim", answers, then=lambda error, result: None)
            timed(kind, store.captured[0])
        start = clock()
        conn.flush_history()
        conn.save_clock()
        conn.execute("COMMIT")
        conn.event_head = conn.appended[-1].seq
        conn.appended.clear()
        used["commit"] += clock() - start
    conn.hot.close()
    conn.close()
    store.close()
    return {kind: ns / count / 1000 for kind, ns in used.items()}


def steps_report(workdir: Path, count: int, repeats: int) -> None:
    best: dict[bool, dict[str, float]] = {False: {}, True: {}}
    for n in range(repeats):  # alternating, each on a fresh database; the best of each kept
        for compiled in (False, True):
            got = steps_replay(str(workdir / f"steps-{n}-{compiled}.db"), count, compiled)
            mine = best[compiled]
            if not mine or sum(got.values()) < sum(mine.values()):
                best[compiled] = got
    print(f"best of {repeats} replays of {count:,} messages each, {STEPS_BATCH} to a commit")
    print()
    print("| writer step, CPU us per message | Python steps | compiled steps | ratio |")
    print("|---|---|---|---|")
    for kind in (*STEPS_KINDS, "total"):
        py, c = (sum(best[k].values()) if kind == "total" else best[k][kind] for k in (False, True))
        print(f"| {kind} | {py:.2f} | {c:.2f} | {c / py:.2f}x |")


def fs_type(path: Path) -> str:
    best, kind = "", "?"
    with open("/proc/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            mount = fields[1]
            if str(path).startswith(mount) and len(mount) > len(best):
                best, kind = mount, fields[2]
    return kind


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accepts", type=int, default=10_000)
    parser.add_argument("--dir", type=Path, default=ROOT / "benchmarks")
    parser.add_argument("--group-commit-ms", type=float, default=0.0)
    parser.add_argument("--jobs", type=int, metavar="N", help="the per-message write costs")
    parser.add_argument(
        "--steps",
        type=int,
        metavar="N",
        help="the writer's steps, Python against compiled: replays of N messages",
    )
    parser.add_argument("--repeats", type=int, default=7, help="--steps replays per side")
    args = parser.parse_args()

    try:
        import uvloop

        runner, loop_name = uvloop.run, f"uvloop {uvloop.__version__}"
    except ImportError:
        runner, loop_name = asyncio.run, "asyncio"
    workdir = Path(tempfile.mkdtemp(prefix="bench-store-", dir=args.dir))
    print(
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {loop_name},"
        f" {os.cpu_count()} CPUs, database on {fs_type(workdir.resolve())},"
        f" group commit {args.group_commit_ms:g} ms / 256 rows"
    )
    print()
    if args.steps:
        try:
            steps_report(workdir, args.steps, args.repeats)
        finally:
            shutil.rmtree(workdir)
        return 0
    if args.jobs:
        try:
            jobs_report(workdir, args.jobs, runner)
        finally:
            shutil.rmtree(workdir)
        return 0
    print(
        "| concurrency | accepts | normal: accepts/s | normal: commits/10k"
        " | full: accepts/s | full: commits/10k |"
    )
    print("|---|---|---|---|---|---|")
    try:
        for concurrency in CONCURRENCY:
            total = args.accepts if concurrency > 1 else max(args.accepts // 5, 1)
            cells = []
            for mode in SYNC_MODES:
                path = str(workdir / f"{mode}-{concurrency}.db")
                rate, commits = runner(
                    one_run(path, mode, concurrency, total, args.group_commit_ms)
                )
                cells += [f"{rate:,.0f}", f"{commits * 10_000 / total:,.0f}"]
            print(f"| {concurrency} | {total:,} | " + " | ".join(cells) + " |")
    finally:
        shutil.rmtree(workdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
