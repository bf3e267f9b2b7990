"""gatewayd's instructions per message, end to end, counted by callgrind: a figure the machine's
noise does not move (CPU times on this shared VM drift by up to 1.6x within an hour).

    .venv/bin/python benchmarks/bench_instructions.py [--repo DIR ...] [--messages N]

For each checkout given (default: this one) gatewayd runs under `valgrind --tool=callgrind`
against the bundled simulator with the end-to-end benchmark's setup (one carrier, one
transceiver bind, window 50, one-part 120-character GSM text, receipts pushed to a subscriber
that acks every 200), twice: with a short and a long closed-loop run. Instructions per message
are the difference of the two totals over the difference of the message counts, so start-up,
import and shutdown cancel out. All of gatewayd's threads are counted (event loop, store writer,
checkpointer, readers); the kernel's work (syscalls, TCP) is not. Pass several `--repo`
directories (e.g. `git worktree add /tmp/old <commit>`) to compare commits side by side; the
first is the reference of the ratio column.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_e2e as e2e  # the load client, the simulator and the profiles

ROOT = Path(__file__).resolve().parent.parent
OUTSTANDING = 64


async def count_instructions(repo: Path, messages: int, tmp: Path) -> int:
    """callgrind's instruction total for gatewayd (checkout `repo`) carrying `messages`."""
    from gateway.api.client import GatewayClient

    sims = e2e.start_sims(1, tmp)
    try:
        (tmp / "profiles").mkdir()
        (tmp / "profiles" / "sim0.toml").write_text(
            e2e.PROFILE_TOML.format(
                port=sims[0].port, system_id=e2e.SYSTEM_ID, password=e2e.PASSWORD, window=e2e.WINDOW
            )
        )
        config = tmp / "gatewayd.toml"
        config.write_text(
            'carrier_profiles_dir = "profiles"\n[api]\nsocket_path = "api.sock"\n'
            '[store]\nstate_dir = "state"\n[logging]\nlevel = "warning"\n'
        )
        out = tmp / "callgrind.out"
        env = {**os.environ, "PYTHONPATH": str(repo)}
        with open(tmp / "gatewayd.log", "wb") as err:
            proc = await asyncio.create_subprocess_exec(
                "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                sys.executable, "-m", "gateway.daemon", "--config", str(config),
                stdout=asyncio.subprocess.PIPE, stderr=err, cwd=str(repo), env=env,
            )  # fmt: skip
        assert proc.stdout is not None
        async with asyncio.timeout(600):
            while not (await proc.stdout.readline()).startswith(b"gatewayd ready"):
                if proc.stdout.at_eof():
                    raise RuntimeError((tmp / "gatewayd.log").read_text()[-2000:])
        socket = tmp / "api.sock"
        async with await GatewayClient.connect(socket, timeout=60) as client:
            for _ in range(600):
                if e2e._all_bound(await client.status(), 1):
                    break
                await asyncio.sleep(0.2)
            else:
                raise RuntimeError("gatewayd did not bind under valgrind")
        load = e2e.Load(["sim0"])
        stop = asyncio.Event()
        follower = asyncio.create_task(e2e.follow(socket, load, stop))
        clients = [await GatewayClient.connect(socket, timeout=60) for _ in range(2)]
        try:
            async with asyncio.timeout(120):
                await load.subscribed.wait()
            await e2e.run_phase(
                load, messages, e2e.closed_loop(clients, load, messages, OUTSTANDING), 3600
            )
        finally:
            await e2e.stop_load(stop, follower, clients)
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(600):
                code = await proc.wait()
        if code != 0:
            raise RuntimeError(f"gatewayd exited {code}: {(tmp / 'gatewayd.log').read_text()}")
        found = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
        if found is None:
            raise RuntimeError(f"no instruction total in {out}")
        return int(found.group(1))
    finally:
        e2e.stop_sims(sims)


async def per_message(repo: Path, short: int, long: int) -> tuple[float, int, int]:
    totals = []
    for count in (short, long):
        tmp = Path(tempfile.mkdtemp(prefix="gwinstr"))
        try:
            totals.append(await count_instructions(repo, count, tmp))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return (totals[1] - totals[0]) / (long - short), totals[0], totals[1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", action="append", type=Path, help="a checkout (repeatable)")
    parser.add_argument("--messages", type=int, default=4000, help="the long run (default 4,000)")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is needed (Debian package valgrind)", file=sys.stderr)
        return 2
    repos = [r.resolve() for r in (args.repo or [ROOT])]
    short = max(1, args.messages // 4)
    rows = []
    for repo in repos:
        print(f"{repo}: {short:,} and {args.messages:,} messages under callgrind ...", flush=True)
        rows.append((repo, *asyncio.run(per_message(repo, short, args.messages))))
    first = rows[0][1]
    print("\n| checkout | instructions per message | vs first | totals (short / long run) |")
    print("|---|---|---|---|")
    for repo, ir, low, high in rows:
        print(f"| {repo} | {ir:,.0f} | {ir / first:.2f}x | {low:,} / {high:,} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
