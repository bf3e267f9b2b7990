"""End-to-end benchmark: client -> gatewayd -> SMSC simulator -> receipt -> client event.

    .venv/bin/python benchmarks/bench_e2e.py [--quick] [--messages N] [--sims K]

Processes: K `gateway-smsc-sim` processes (receipt delay 0, no latency, deliver window 50),
gatewayd as a subprocess with one carrier profile per simulator (one transceiver bind, window
50, tps 100,000), and the load client here, on uvloop, with the socket API client
(`GatewayClient`): sms.send pipelined with a bounded number outstanding, receipts taken from one
events.subscribe push stream (acked cumulatively: every 200 events, or after 20 ms without
one). Messages are one-part 120-character GSM texts, spread round-robin over the carriers
(sender_pool).

Phases, all against the same daemon: warm-up; throughput (N messages, from the first send to
the last receipt event), run --rounds times (default 3) and the median run reported, as is the
baseline's (the machine is shared: single runs vary by 30%); latency (a fixed 1,000 msg/s,
open loop); then more messages until 250,000 in all (--quick: 10,000), RSS read at 100,000 (the
issue's figure) and at the end; growth is judged from 100,000 to the end ("once warm").
Daemon CPU is utime + stime of its process (every thread) from /proc/<pid>/stat over the
phase; RSS is VmRSS from /proc/<pid>/status.

Baseline in the same run: aiosmpplib's ESME (one per simulator, transceiver) in a child
process, with a window of 50 outstanding submit_sm per ESME kept by this benchmark (aiosmpplib
has none: its broker is fed only when a slot is free, a slot is freed by the submit_sm_resp),
receipts included; its CPU is getrusage(RUSAGE_SELF) of that child over the same span. The
same child measures the direct latency at 1,000 msg/s, which is subtracted to get the latency
the gateway adds.

Targets (the issue): daemon CPU <= 100 us/message (aim 50), i.e. >= 10,000 msg/s on one core;
p99 added latency <= 5 ms at 1,000 msg/s; no RSS growth with message count once warm.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

import uvloop  # noqa: E402

TEXT = (
    "Your verification code is 482913. It expires in 10 minutes. "
    "Do not share this code with anyone, not even with our staff."
)
assert len(TEXT) == 120
DESTINATION = "447700900123"
SYSTEM_ID, PASSWORD = "gwbench", "bench123"
WINDOW = 50  # submit window per bind, gateway and baseline alike
DELIVER_WINDOW = 50  # the simulator's unacked deliver_sm per connection
LATENCY_RATE = 1000.0
TARGET_CPU_US = 100.0
AIM_CPU_US = 50.0
TARGET_P99_MS = 5.0
MEMORY_AT = 100_000  # the memory figure
CLK_TCK = os.sysconf("SC_CLK_TCK")
SIM_TOML = f"""\
[server]
keep_submitted = 0
[receipts]
delay = 0.0
queue_limit = 10000000
[delivery]
window = {DELIVER_WINDOW}
"""
PROFILE_TOML = """\
[connection]
host = "127.0.0.1"
port = {port}
tls = false
[account]
system_id = "{system_id}"
password = "{password}"
[binds]
mode = "transceiver"
count = 1
[window]
size = {window}
response_timeout_s = 30
[throughput]
tps = 100000
[enquire_link]
interval_s = 60
timeout_s = 10
[submit]
encodings = [0, 3, 8]
source_addr = "GWBENCH"
source_ton = 5
source_npi = 0
dest_ton = 1
dest_npi = 1
registered_delivery = 1
[receipts]
id_format = "hex"
"""


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median CPU per message (all its figures, so they stay consistent)."""
    ordered = sorted(rounds, key=lambda r: r["cpu_us"])
    return ordered[len(ordered) // 2]


def proc_cpu(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    return proc_cpu_path(Path(f"/proc/{pid}/stat"))


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of a process's main thread (the event loop) and of its other threads."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            name = "main thread" if task.name == str(pid) else "store threads (writer, readers)"
            out[name] = out.get(name, 0.0) + proc_cpu_path(task / "stat")
    return out


def proc_cpu_path(path: Path) -> float:
    """utime + stime from a /proc stat file (fields 14 and 15), in seconds."""
    raw = path.read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---------------------------------------------------------------------------------------------
# Simulators and daemon


@dataclass
class Sim:
    proc: subprocess.Popen[str]
    port: int


def start_sims(count: int, tmp: Path) -> list[Sim]:
    config = tmp / "sim.toml"
    config.write_text(SIM_TOML)
    sims = []
    for n in range(count):
        cmd = [
            sys.executable, "-m", "gateway.smsc_sim", "--config", str(config), "--port", "0",
            "--system-id", SYSTEM_ID, "--password", PASSWORD, "--seed", str(n + 1),
        ]  # fmt: skip
        with open(tmp / f"sim{n}.log", "wb") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"listening on [\d.]+:(\d+)", line)
        if not found:
            raise RuntimeError(f"simulator did not start: {line!r}")
        sims.append(Sim(proc, int(found.group(1))))
    return sims


def stop_sims(sims: list[Sim]) -> None:
    for sim in sims:
        if sim.proc.poll() is None:
            sim.proc.send_signal(signal.SIGTERM)
    for sim in sims:
        with contextlib.suppress(subprocess.TimeoutExpired):
            sim.proc.communicate(timeout=10)


async def start_daemon(
    sims: list[Sim], tmp: Path, cprofile: str | None
) -> tuple[asyncio.subprocess.Process, Path]:
    (tmp / "profiles").mkdir()
    for n, sim in enumerate(sims):
        (tmp / "profiles" / f"sim{n}.toml").write_text(
            PROFILE_TOML.format(
                port=sim.port, system_id=SYSTEM_ID, password=PASSWORD, window=WINDOW
            )
        )
    config = tmp / "gatewayd.toml"
    config.write_text(
        'carrier_profiles_dir = "profiles"\n[api]\nsocket_path = "api.sock"\n'
        '[store]\nstate_dir = "state"\n[logging]\nlevel = "warning"\n'
    )
    prefix = [sys.executable]
    if cprofile:
        prefix += ["-m", "cProfile", "-o", cprofile]
    with open(tmp / "gatewayd.log", "wb") as err:
        proc = await asyncio.create_subprocess_exec(
            *prefix, "-m", "gateway.daemon", "--config", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=err, cwd=str(ROOT),
        )  # fmt: skip
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        ready = (await proc.stdout.readline()).decode().strip()
    if not ready.startswith("gatewayd ready"):
        raise RuntimeError(f"gatewayd did not start: {(tmp / 'gatewayd.log').read_text()}")
    # wait for every carrier's bind
    from gateway.api.client import GatewayClient

    async with await GatewayClient.connect(tmp / "api.sock", timeout=10) as client:
        for _ in range(200):
            status = await client.status()
            if _all_bound(status, len(sims)):
                break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError(f"carriers did not bind: {status}")
    return proc, tmp / "api.sock"


def _all_bound(status: dict[str, Any], count: int) -> bool:
    carriers = status["carriers"]
    return len(carriers) == count and all(c["binds_up"] >= 1 for c in carriers.values())


# ---------------------------------------------------------------------------------------------
# The load client


@dataclass
class Load:
    carriers: list[str]
    sent_at: dict[str, float] = field(default_factory=dict)  # message_id -> send time
    early: dict[str, float] = field(default_factory=dict)  # receipt before the send reply
    receipts: int = 0
    target: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    accept_lat: list[float] | None = None
    receipt_lat: list[float] | None = None
    last_receipt: float = 0.0

    def on_receipt(self, message_id: str, now: float) -> None:
        start = self.sent_at.pop(message_id, None)
        if start is None:
            self.early[message_id] = now
            return
        self._count(start, now)

    def on_accepted(self, message_id: str, start: float, now: float) -> None:
        if self.accept_lat is not None:
            self.accept_lat.append(now - start)
        end = self.early.pop(message_id, None)
        if end is None:
            self.sent_at[message_id] = start
        else:
            self._count(start, end)

    def _count(self, start: float, end: float) -> None:
        if self.receipt_lat is not None:
            self.receipt_lat.append(end - start)
        self.receipts += 1
        self.last_receipt = end
        if self.receipts >= self.target:
            self.done.set()


async def follow(socket: Path, load: Load, stop: asyncio.Event) -> None:
    from gateway.api.client import GatewayClient

    async with await GatewayClient.connect(socket, timeout=60) as client:
        sub = await client.subscribe("bench", window=1000)
        acked = seen = sub.after
        load.subscribed.set()
        clock = time.perf_counter
        queue = sub.queue

        def ack(seq: int) -> None:
            task = asyncio.create_task(client.ack("bench", seq))
            _ACKS.add(task)
            task.add_done_callback(_ack_done)

        # Cumulative acks, as a consumer that commits its position does: after 200 events, or
        # once the stream has been quiet for ACK_IDLE_S (the window of 1,000 never fills).
        while not stop.is_set():
            try:
                async with asyncio.timeout(None if seen == acked else ACK_IDLE_S):
                    event = await queue.get()
            except TimeoutError:
                acked = seen
                ack(seen)
                continue
            if not isinstance(event, dict):
                raise RuntimeError(f"subscription ended: {event!r}")
            if event.get("kind") == "receipt":
                load.on_receipt(event["message_id"], clock())
            seen = event["seq"]
            if seen - acked >= ACK_EVERY:
                acked = seen
                ack(seen)


_ACKS: set[asyncio.Task[Any]] = set()  # strong references to acks in flight
ACK_EVERY = 200
ACK_IDLE_S = 0.02


def _ack_done(task: asyncio.Task[Any]) -> None:
    _ACKS.discard(task)
    # an ack still in flight when the run stops may meet a closed connection: that is fine
    if not task.cancelled():
        task.exception()


async def send_one(client: Any, load: Load, n: int) -> None:
    start = time.perf_counter()
    reply = await client.send_sms(
        "+" + DESTINATION, sender_pool=load.carriers[n % len(load.carriers)], text=TEXT
    )
    load.on_accepted(reply["message_id"], start, time.perf_counter())


async def closed_loop(clients: list[Any], load: Load, count: int, outstanding: int) -> None:
    """`count` messages with at most `outstanding` sends awaiting their reply."""
    slots = asyncio.Semaphore(outstanding)
    tasks: set[asyncio.Task[None]] = set()

    async def one(n: int) -> None:
        try:
            await send_one(clients[n % len(clients)], load, n)
        finally:
            slots.release()

    for n in range(count):
        await slots.acquire()
        task = asyncio.create_task(one(n))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)


async def open_loop(clients: list[Any], load: Load, rate: float, seconds: float) -> int:
    """Sends at a fixed rate for `seconds`, not waiting for replies; returns the count."""
    count = int(rate * seconds)
    tasks = set()
    begin = time.perf_counter()
    for n in range(count):
        delay = begin + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(send_one(clients[n % len(clients)], load, n))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    return count


async def run_phase(load: Load, count: int, coro: Any, timeout: float) -> float:
    load.receipts, load.target = 0, count
    load.done.clear()
    started = time.perf_counter()
    await coro
    async with asyncio.timeout(timeout):
        await load.done.wait()
    return load.last_receipt - started


async def gateway_runs(args: argparse.Namespace, sims: list[Sim], tmp: Path) -> dict[str, Any]:
    from gateway.api.client import GatewayClient

    proc, socket = await start_daemon(sims, tmp, args.cprofile)
    pid = proc.pid
    out: dict[str, Any] = {}
    load = Load([f"sim{n}" for n in range(len(sims))])
    stop = asyncio.Event()
    follower = asyncio.create_task(follow(socket, load, stop))
    clients = [await GatewayClient.connect(socket, timeout=120) for _ in range(args.connections)]
    total = 0
    try:
        async with asyncio.timeout(30):
            await load.subscribed.wait()
        # warm-up
        await run_phase(load, args.warmup, closed_loop(clients, load, args.warmup, 64), 120)
        total += args.warmup
        out["rss_warm"] = proc_rss_kib(pid)
        out["warm_at"] = total
        # throughput: `rounds` runs, the median reported (the machine is shared and noisy)
        rounds: list[dict[str, Any]] = []
        for _ in range(args.rounds):
            store0 = (await clients[0].status())["store"]
            cpu0, mine0, threads0 = proc_cpu(pid), _self_cpu(), thread_cpu(pid)
            sims0 = sum(proc_cpu(s.proc.pid) for s in sims)
            elapsed = await run_phase(
                load,
                args.messages,
                closed_loop(clients, load, args.messages, args.outstanding),
                300,
            )
            total += args.messages
            threads = thread_cpu(pid)
            sims_cpu = sum(proc_cpu(s.proc.pid) for s in sims) - sims0
            store1 = (await clients[0].status())["store"]
            rounds.append(
                {
                    "tput": args.messages / elapsed,
                    "cpu_us": (proc_cpu(pid) - cpu0) / args.messages * 1e6,
                    "threads_us": {
                        name: (cpu - threads0.get(name, 0.0)) / args.messages * 1e6
                        for name, cpu in threads.items()
                    },
                    "client_cpu_us": (_self_cpu() - mine0) / args.messages * 1e6,
                    "sim_cpu_us": sims_cpu / args.messages * 1e6,
                    "elapsed": elapsed,
                    "jobs_per_commit": (store1["jobs_committed"] - store0["jobs_committed"])
                    / max(1, store1["commits"] - store0["commits"]),
                }
            )
        out.update(median_round(rounds))
        out["rounds_cpu_us"] = [r["cpu_us"] for r in rounds]
        # latency at a fixed rate
        load.accept_lat, load.receipt_lat = [], []
        count = int(LATENCY_RATE * args.latency_s)
        cpu0 = proc_cpu(pid)
        await run_phase(load, count, open_loop(clients, load, LATENCY_RATE, args.latency_s), 120)
        out["lat_cpu_us"] = (proc_cpu(pid) - cpu0) / count * 1e6
        total += count
        out["accept"] = (percentile(load.accept_lat, 0.5), percentile(load.accept_lat, 0.99))
        out["receipt"] = (percentile(load.receipt_lat, 0.5), percentile(load.receipt_lat, 0.99))
        load.accept_lat = load.receipt_lat = None
        out["rss_mid"] = proc_rss_kib(pid)
        out["mid_at"] = total
        # memory: up to the total message count, with a reading at 100,000 on the way
        out["rss_100k"] = out["rss_mid"] if total >= MEMORY_AT else None
        rest = max(0, args.memory_messages - total)
        while rest:
            chunk = min(rest, 20_000)
            if total < MEMORY_AT:
                chunk = min(chunk, MEMORY_AT - total)
            await run_phase(load, chunk, closed_loop(clients, load, chunk, args.outstanding), 300)
            rest -= chunk
            total += chunk
            if total == MEMORY_AT:
                out["rss_100k"] = proc_rss_kib(pid)
        out["rss_end"] = proc_rss_kib(pid)
        out["end_at"] = total
    finally:
        await stop_load(stop, follower, clients)
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            code = await proc.wait()
        if code != 0:
            print(f"gatewayd exited {code}: {(tmp / 'gatewayd.log').read_text()[-2000:]}")
    return out


async def stop_load(stop: asyncio.Event, follower: asyncio.Task[Any], clients: list[Any]) -> None:
    """End the subscriber and close the sending clients."""
    stop.set()
    follower.cancel()
    with contextlib.suppress(BaseException):
        await follower
    for client in clients:
        await client.close()


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------------------------------
# The aiosmpplib baseline (run in a child process: --baseline-child)


async def baseline_child(
    ports: list[int], messages: int, latency_s: float, rounds_count: int
) -> dict[str, Any]:
    from aiosmpplib import (
        ESME,
        NPI,
        TON,
        AbstractBroker,
        AbstractHook,
        DeliverSm,
        PhoneNumber,
        SubmitSm,
        SubmitSmResp,
    )

    class Broker(AbstractBroker):
        def __init__(self) -> None:
            self.queue: asyncio.Queue[Any] = asyncio.Queue()

        async def enqueue(self, message: Any) -> None:
            self.queue.put_nowait(message)

        async def dequeue(self) -> Any:
            return await self.queue.get()

    class State:
        def __init__(self) -> None:
            self.sent: dict[str, float] = {}
            self.resp_lat: list[float] | None = None
            self.receipt_lat: list[float] | None = None
            self.receipts = 0
            self.target = 0
            self.done = asyncio.Event()
            self.last = 0.0

    state = State()

    class Hook(AbstractHook):
        def __init__(self) -> None:
            self.slots = asyncio.Semaphore(WINDOW)

        async def sending(self, smpp_message: Any, pdu: bytes, client_id: str) -> None:
            pass

        async def received(self, smpp_message: Any, pdu: bytes, client_id: str) -> None:
            now = time.perf_counter()
            if isinstance(smpp_message, SubmitSmResp):
                self.slots.release()
                if state.resp_lat is not None and smpp_message.log_id in state.sent:
                    state.resp_lat.append(now - state.sent[smpp_message.log_id])
            elif isinstance(smpp_message, DeliverSm) and smpp_message.is_receipt():
                start = state.sent.pop(smpp_message.log_id, None)
                if start is not None and state.receipt_lat is not None:
                    state.receipt_lat.append(now - start)
                state.receipts += 1
                state.last = now
                if state.receipts >= state.target:
                    state.done.set()

        async def send_error(self, smpp_message: Any, error: Exception, client_id: str) -> None:
            pass

    esmes = []
    for n, port in enumerate(ports):
        broker, hook = Broker(), Hook()
        esme = ESME(
            smsc_host="127.0.0.1", smsc_port=port, system_id=SYSTEM_ID, password=PASSWORD,
            client_id=f"bench{n}", log_level=logging.WARNING, log_handler=logging.NullHandler(),
            hook=hook, broker=broker, enquire_link_interval=60.0,
        )  # fmt: skip
        esmes.append((esme, broker, hook, asyncio.create_task(esme.start())))
    source = PhoneNumber("GWBENCH", TON.ALPHANUMERIC, NPI.UNKNOWN)
    dest = PhoneNumber(DESTINATION, TON.INTERNATIONAL, NPI.ISDN)
    ids = iter(range(10**9))

    def message() -> Any:
        log_id = str(next(ids))
        state.sent[log_id] = time.perf_counter()
        return SubmitSm(short_message=TEXT, source=source, destination=dest, log_id=log_id)

    async def windowed(count: int) -> None:
        for n in range(count):
            _, broker, hook, _ = esmes[n % len(esmes)]
            await hook.slots.acquire()
            await broker.enqueue(message())

    async def fixed_rate(count: int) -> None:
        begin = time.perf_counter()
        for n in range(count):
            delay = begin + n / LATENCY_RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            _, broker, hook, _ = esmes[n % len(esmes)]
            await hook.slots.acquire()  # a full window would show as latency, never at 1/ms
            await broker.enqueue(message())

    async def phase(count: int, coro: Any) -> float:
        state.receipts, state.target = 0, count
        state.done.clear()
        begin = time.perf_counter()
        await coro
        async with asyncio.timeout(300):
            await state.done.wait()
        return state.last - begin

    out: dict[str, Any] = {}
    await phase(min(1000, messages), windowed(min(1000, messages)))  # warm-up, binds
    rounds = []
    for _ in range(rounds_count):
        cpu0 = _self_cpu()
        elapsed = await phase(messages, windowed(messages))
        rounds.append({"cpu_us": (_self_cpu() - cpu0) / messages * 1e6, "tput": messages / elapsed})
    out.update(median_round(rounds))
    out["rounds_cpu_us"] = [r["cpu_us"] for r in rounds]
    state.resp_lat, state.receipt_lat = [], []
    count = int(LATENCY_RATE * latency_s)
    await phase(count, fixed_rate(count))
    out["accept"] = (percentile(state.resp_lat, 0.5), percentile(state.resp_lat, 0.99))
    out["receipt"] = (percentile(state.receipt_lat, 0.5), percentile(state.receipt_lat, 0.99))
    for esme, *_, task in esmes:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await esme.stop()
        task.cancel()
    return out


def run_baseline(sims: list[Sim], messages: int, latency_s: float, rounds: int) -> dict[str, Any]:
    cmd = [
        sys.executable, __file__, "--baseline-child", ",".join(str(s.port) for s in sims),
        "--messages", str(messages), "--latency-s", str(latency_s), "--rounds", str(rounds),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"baseline failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads(lines[-1])


# ---------------------------------------------------------------------------------------------
# Report


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(args: argparse.Namespace, gw: dict[str, Any], base: dict[str, Any]) -> str:
    ms = 1000.0
    added_accept = [(gw["accept"][i] - base["accept"][i]) * ms for i in (0, 1)]
    added_receipt = [(gw["receipt"][i] - base["receipt"][i]) * ms for i in (0, 1)]
    growth = gw["rss_end"] - gw["rss_warm"]
    # "once warm": from the 100,000th message (caches and allocator arenas sized) to the end;
    # a run too short for that (--quick) judges from the end of the latency phase
    if gw["rss_100k"] is not None and gw["end_at"] > MEMORY_AT:
        base_kib, base_at, since = gw["rss_100k"], MEMORY_AT, f"after {MEMORY_AT:,}"
    else:
        base_kib, base_at, since = gw["rss_mid"], gw["mid_at"], "after the 2nd"
    late = (gw["rss_end"] - base_kib) / max(1, gw["end_at"] - base_at) * 10_000
    rows = [
        ("throughput, msg/s (client send -> receipt event)", f"{gw['tput']:,.0f}",
         f"{base['tput']:,.0f}", f"{gw['tput'] / base['tput']:.2f}x", ""),
        ("CPU per message, us (gatewayd / aiosmpplib process)", f"{gw['cpu_us']:.0f}",
         f"{base['cpu_us']:.0f}", f"{gw['cpu_us'] / base['cpu_us']:.2f}x",
         f"<= {TARGET_CPU_US:.0f} (aim {AIM_CPU_US:.0f}): "
         f"{verdict(gw['cpu_us'] <= TARGET_CPU_US)}"),
        ("  msg/s on one core at that CPU cost", f"{1e6 / gw['cpu_us']:,.0f}",
         f"{1e6 / base['cpu_us']:,.0f}", "",
         f">= 10,000: {verdict(1e6 / gw['cpu_us'] >= 10_000)}"),
        ("latency p50 / p99 ms, send -> accepted (durable) / submit_sm_resp",
         f"{gw['accept'][0] * ms:.2f} / {gw['accept'][1] * ms:.2f}",
         f"{base['accept'][0] * ms:.2f} / {base['accept'][1] * ms:.2f}",
         f"+{added_accept[0]:.2f} / +{added_accept[1]:.2f}", ""),
        ("latency p50 / p99 ms, send -> receipt event / receipt",
         f"{gw['receipt'][0] * ms:.2f} / {gw['receipt'][1] * ms:.2f}",
         f"{base['receipt'][0] * ms:.2f} / {base['receipt'][1] * ms:.2f}",
         f"+{added_receipt[0]:.2f} / +{added_receipt[1]:.2f}",
         f"p99 added <= {TARGET_P99_MS:g}: {verdict(added_receipt[1] <= TARGET_P99_MS)}"),
        (f"gatewayd RSS MiB: warm ({gw['warm_at']:,} msgs) / {gw['mid_at']:,} / "
         f"{MEMORY_AT:,} / {gw['end_at']:,} msgs",
         f"{gw['rss_warm'] / 1024:.1f} / {gw['rss_mid'] / 1024:.1f} / "
         f"{'-' if gw['rss_100k'] is None else format(gw['rss_100k'] / 1024, '.1f')} / "
         f"{gw['rss_end'] / 1024:.1f}",
         "", f"{growth / 1024:+.1f} MiB from warm; {late:+.0f} KiB/10k msgs {since}",
         f"no growth (<= 64 KiB/10k {since}): {verdict(late <= 64)}"),
    ]  # fmt: skip
    lines = [
        "| figure | gatewayd | aiosmpplib direct | gatewayd / direct, or added | target |",
        "|---|---|---|---|---|",
        *(f"| {' | '.join(row)} |" for row in rows),
    ]
    threads = ", ".join(
        f"{name} {us:.0f} us"
        for name, us in sorted(gw["threads_us"].items(), key=lambda t: -t[1])
        if us >= 1
    )
    per_round = " / ".join(f"{us:.0f}" for us in gw["rounds_cpu_us"])
    base_rounds = " / ".join(f"{us:.0f}" for us in base["rounds_cpu_us"])
    notes = (
        f"\nthroughput: median of {args.rounds} runs per side; CPU us/message by run: gatewayd "
        f"{per_round}, aiosmpplib {base_rounds or 'n/a'}."
        f"\nsimulators: {args.sims}; throughput run {args.messages:,} messages, "
        f"{args.outstanding} sends outstanding over {args.connections} API connections; "
        f"gatewayd {gw['elapsed']:.2f} s, {gw['jobs_per_commit']:.1f} store writes per commit; "
        f"CPU per message elsewhere during it: load client {gw['client_cpu_us']:.0f} us, "
        f"simulators {gw['sim_cpu_us']:.0f} us; gatewayd by thread: {threads}; "
        f"gatewayd at 1,000 msg/s: "
        f"{gw['lat_cpu_us']:.0f} us/message; latency run {args.latency_s:g} s at "
        f"{LATENCY_RATE:,.0f} msg/s."
    )
    return "\n".join(lines) + "\n" + notes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="2,000 messages, 3 s latency run, 10,000 in all")
    add("--messages", type=int, help="throughput run size (default 20,000; --quick 2,000)")
    add("--sims", type=int, default=1, help="simulator processes, one carrier each (default 1)")
    add("--outstanding", type=int, default=128, help="sms.send awaiting a reply (default 128)")
    add("--connections", type=int, default=2, help="API connections for sending (default 2)")
    add("--latency-s", type=float, help="seconds at 1,000 msg/s (default 10; --quick 3)")
    add("--memory-messages", type=int, help="messages in all (default 250,000; --quick 10,000)")
    add("--cprofile", metavar="FILE", help="run gatewayd under cProfile, stats to FILE")
    add("--no-baseline", action="store_true", help="skip the aiosmpplib baseline")
    add("--rounds", type=int, help="throughput runs per side, median reported (default 3)")
    add("--baseline-child", metavar="PORTS", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.messages is None:
        args.messages = 2_000 if args.quick else 20_000
    if args.latency_s is None:
        args.latency_s = 3.0 if args.quick else 10.0
    if args.memory_messages is None:
        args.memory_messages = 10_000 if args.quick else 250_000
    args.warmup = 1_000 if args.quick else 5_000
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3

    if args.baseline_child:
        ports = [int(p) for p in args.baseline_child.split(",")]
        result = uvloop.run(baseline_child(ports, args.messages, args.latency_s, args.rounds))
        print(json.dumps(result), flush=True)
        return 0

    from importlib.metadata import version

    import aiosmpplib  # noqa: F401  (fail early when the bench extra is missing)

    tmp = Path(tempfile.mkdtemp(prefix="gwbench", dir="/tmp"))  # sun_path is 108 octets
    started = time.monotonic()
    sims: list[Sim] = []
    try:
        sims = start_sims(args.sims, tmp)
        print(f"{args.sims} simulator(s) on ports {[s.port for s in sims]}", flush=True)
        gw = uvloop.run(gateway_runs(args, sims, tmp))
        print(f"gatewayd done ({time.monotonic() - started:.0f} s)", flush=True)
        base = {
            "tput": float("nan"), "cpu_us": float("nan"), "rounds_cpu_us": [],
            "accept": (float("nan"),) * 2, "receipt": (float("nan"),) * 2,
        }  # fmt: skip
        if not args.no_baseline:
            base = run_baseline(sims, args.messages, args.latency_s, args.rounds)
            print(f"baseline done ({time.monotonic() - started:.0f} s)", flush=True)
    finally:
        stop_sims(sims)
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(
        f"Python {platform.python_version()}, uvloop {version('uvloop')}, "
        f"aiosmpplib {version('aiosmpplib')}, {os.cpu_count()} CPUs; "
        f"{time.monotonic() - started:.0f} s in all"
    )
    print(report(args, gw, base))
    return 0


if __name__ == "__main__":
    sys.exit(main())
