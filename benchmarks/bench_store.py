"""Message store benchmark: accepts/s and commits per 10,000 accepts, synchronous=normal vs full.

    .venv/bin/python benchmarks/bench_store.py [--accepts N] [--dir DIR] [--group-commit-ms MS]

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
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from gateway.store.sqlite_store import NewMessage, SqliteStore  # noqa: E402

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
