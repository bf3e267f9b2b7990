"""The demo: a batch of SMS through gatewayd and the SMSC simulator, receipts included.

Starts gateway-smsc-sim in-process (or, with --external, uses the SMSC of the carrier profile's
[connection]) and gatewayd as a subprocess with a temporary state directory and API socket,
then is an ordinary API client: it subscribes to the event log, sends short GSM messages, one
with GSM extension characters and one long Unicode message, prints each part's submit_sm_resp
(read with sms.get) and each receipt event as they arrive, and a summary. It stops the daemon
with SIGTERM. Exit status 0 when every part was accepted by the carrier and got its receipt.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from gateway.api.client import GatewayClient, Subscription
from gateway.api.errors import ApiError
from gateway.ops.carrier_profile import CarrierProfile, load_carrier_profile
from gateway.ops.runner import run
from gateway.smpp.constants import CommandStatus as S
from gateway.smsc_sim import Account, SimConfig, SmscSimulator

DEFAULT_PROFILE = Path(__file__).resolve().parent.parent / "carrier_profiles" / "local-sim.toml"
CODING_NAMES = {0: "GSM", 1: "IA5", 3: "Latin-1", 8: "UCS-2"}
DESTINATION = "+4477009000{:02d}"
EXTENSION_TEXT = "Your code is [4711] and costs 2€ {VAT incl.} ~ see you"
LONG_TEXT = (
    "Grüße aus Zürich 👋 Your parcel 📦 is on its way and arrives tomorrow between 9:00 and "
    "12:00. Track it at example.com/t/8c1f or reply STOP to opt out 🙏"
)
CONSUMER = "demo"


def status_name(status: int) -> str:
    try:
        return S(status).name
    except ValueError:
        return f"0x{status:08x}"


def batch(count: int) -> list[str]:
    texts = [f"Hello #{n} from gatewayd" for n in range(1, count + 1)]
    return [*texts, EXTENSION_TEXT, LONG_TEXT]


class Tracker:
    """What came back for each message: per part, the submit response and the receipt."""

    def __init__(self) -> None:
        self.number: dict[str, int] = {}  # message_id -> 1-based number in the batch
        self.parts: dict[str, int] = {}
        self.resps: dict[tuple[str, int], int] = {}
        self.receipts: dict[tuple[str, int], str] = {}
        self.early: list[dict[str, Any]] = []  # receipts pushed before our send_sms reply
        self.done = asyncio.Event()

    def add(self, message_id: str, number: int, parts: int) -> None:
        self.number[message_id] = number
        self.parts[message_id] = parts
        early, self.early = self.early, []
        for event in early:
            self.on_event(event)

    def label(self, message_id: str, part: int) -> str:
        return f"msg {self.number[message_id]:>2}  part {part}/{self.parts[message_id]}"

    def on_part(self, message_id: str, part: dict[str, Any]) -> None:
        key = (message_id, part["part"])
        if part["resp_status"] is None or key in self.resps:
            return
        self.resps[key] = part["resp_status"]
        print(
            f"submit_sm_resp  {self.label(*key)}  id {part['carrier_message_id'] or '-':<12} "
            f"{status_name(part['resp_status'])}"
        )
        self.check()

    def on_event(self, event: dict[str, Any]) -> None:
        if event["kind"] != "receipt":
            return
        message_id = event.get("message_id")
        if message_id not in self.number:
            self.early.append(event)
            return
        key = (message_id, event["part"])
        self.receipts[key] = event.get("stat") or event["state"]
        raw = event.get("carrier_message_id_raw") or event["carrier_message_id"]
        print(
            f"receipt         {self.label(*key)}  id {raw:<12} {self.receipts[key]:<8} "
            f"err {event.get('err')}"
        )
        self.check()

    def expected(self) -> list[tuple[str, int]]:
        return [(m, n) for m, total in self.parts.items() for n in range(1, total + 1)]

    def check(self) -> None:
        keys = self.expected()
        answered = all(k in self.resps for k in keys)
        if answered and all(k in self.receipts or self.resps[k] != 0 for k in keys):
            self.done.set()

    def summary(self, elapsed: float) -> bool:
        keys = self.expected()
        accepted = sum(1 for k in keys if self.resps.get(k) == 0)
        delivered = sum(1 for stat in self.receipts.values() if stat == "DELIVRD")
        print("\nsummary")
        print(f"  messages   {len(self.parts)} ({len(keys)} submit_sm)")
        print(f"  accepted   {accepted}/{len(keys)}")
        print(
            f"  receipts   {len(self.receipts)}/{accepted}  "
            f"({delivered} delivered, {len(self.receipts) - delivered} failed)"
        )
        print(f"  elapsed    {elapsed:.2f} s")
        return accepted == len(keys) and len(self.receipts) == accepted


async def follow_events(sub: Subscription, tracker: Tracker) -> None:
    async for event in sub:
        tracker.on_event(event)
        await sub.ack(event["seq"])


async def poll_responses(client: GatewayClient, tracker: Tracker) -> None:
    while not tracker.done.is_set():
        for message_id in list(tracker.number):
            for part in (await client.get_sms(message_id))["parts"]:
                tracker.on_part(message_id, part)
        await asyncio.sleep(0.05)


async def send_batch(
    client: GatewayClient, tracker: Tracker, carrier: str, texts: list[str]
) -> None:
    for number, text in enumerate(texts, start=1):
        # a sender_pool naming the carrier sends with the profile's own source_addr
        reply = await client.send_sms(
            DESTINATION.format(number), sender_pool=carrier, text=text, client_ref=f"demo-{number}"
        )
        tracker.add(reply["message_id"], number, reply["parts"])
        coding = CODING_NAMES.get(reply["data_coding"], str(reply["data_coding"]))
        noun = "part " if reply["parts"] == 1 else "parts"
        shown = text if len(text) <= 40 else text[:37] + "..."
        print(f"accepted        msg {number:>2}  {coding:<7} {reply['parts']} {noun}  {shown}")


@contextlib.asynccontextmanager
async def gatewayd(profile_name: str, profile_text: str) -> AsyncIterator[Path]:
    """gatewayd in a temporary directory; yields its API socket, stops it with SIGTERM."""
    tmp = Path(tempfile.mkdtemp(prefix="gwdemo", dir="/tmp"))  # sun_path is 108 octets
    try:
        (tmp / "profiles").mkdir()
        (tmp / "profiles" / profile_name).write_text(profile_text)
        config, log = tmp / "gatewayd.toml", tmp / "gatewayd.log"
        config.write_text(
            'carrier_profiles_dir = "profiles"\n[api]\nsocket_path = "api.sock"\n'
            '[store]\nstate_dir = "state"\n[logging]\nlevel = "warning"\n'
        )
        with open(log, "wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway.daemon", "--config", str(config),
                stdout=asyncio.subprocess.PIPE, stderr=err,
            )  # fmt: skip
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(20):
                ready = (await proc.stdout.readline()).decode().strip()
            if not ready.startswith("gatewayd ready"):
                raise RuntimeError(f"gatewayd did not start: {log.read_text()}")
            print(ready)
            yield tmp / "api.sock"
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(20):
                code = await proc.wait()
            print(f"gatewayd stopped (exit {code})")
        if code != 0:
            raise RuntimeError(f"gatewayd exited with {code}: {log.read_text()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def drive(socket: Path, carrier: str, texts: list[str], timeout: float) -> bool:
    tracker = Tracker()
    started = time.monotonic()
    async with await GatewayClient.connect(socket, timeout=10) as client:
        sub = await client.subscribe(CONSUMER)
        tasks = [
            asyncio.create_task(follow_events(sub, tracker)),
            asyncio.create_task(poll_responses(client, tracker)),
        ]
        try:
            await send_batch(client, tracker, carrier, texts)
            try:
                async with asyncio.timeout(timeout):
                    await tracker.done.wait()
            except TimeoutError:
                print(f"  ! not every answer arrived within {timeout:g} s")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=5)
    return tracker.summary(time.monotonic() - started)


def simulator_config(profile: CarrierProfile, args: argparse.Namespace) -> SimConfig:
    return SimConfig(
        host=profile.connection.host,
        port=0,
        accounts=(Account(profile.account.system_id, profile.account.password),),
        id_format=profile.receipts.id_format,
        receipt_delay=args.receipt_delay,
        fail_ratio=args.fail_ratio,
        seed=args.seed,
        latency_ms=2.0,
        keep_submitted=0,
    )


async def amain(args: argparse.Namespace) -> bool:
    profile_path = Path(args.profile)
    profile = load_carrier_profile(profile_path)
    text = profile_path.read_text()
    texts = batch(args.count)
    if args.external:
        print("SMSC from the profile's [connection] (external)")
        async with gatewayd(profile_path.name, text) as socket:
            return await drive(socket, profile.name, texts, args.timeout)
    async with SmscSimulator(simulator_config(profile, args)) as sim:
        print(
            f"SMSC simulator on {sim.host}:{sim.port} (in-process; seed {sim.seed}, "
            f"fail ratio {args.fail_ratio:g}, receipt delay {args.receipt_delay:g} s)"
        )
        # the daemon dials the simulator's free port instead of the profile's
        text = _with_port(text, sim.port)
        async with gatewayd(profile_path.name, text) as socket:
            return await drive(socket, profile.name, texts, args.timeout)


def _with_port(profile_text: str, port: int) -> str:
    lines = profile_text.splitlines()
    section = ""
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped
        elif section == "[connection]" and stripped.split("=")[0].strip() == "port":
            lines[i] = f"port = {port}"
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.demo", description=__doc__)
    add = parser.add_argument
    add("--profile", default=str(DEFAULT_PROFILE), help="carrier profile (TOML)")
    add("--external", action="store_true", help="use the SMSC of the profile's [connection]")
    add("--count", type=int, default=10, help="short GSM messages in the batch (default 10)")
    add("--fail-ratio", type=float, default=0.1, help="simulated UNDELIV share (default 0.1)")
    add("--receipt-delay", type=float, default=0.2, help="simulated receipt delay in seconds")
    add("--seed", type=int, default=1, help="simulator seed (default 1)")
    add("--timeout", type=float, default=15.0, help="seconds to wait for answers")
    args: Any = parser.parse_args(argv)
    try:
        ok = run(amain(args))
    except (OSError, RuntimeError, TimeoutError, ApiError) as exc:
        print(f"demo failed: {exc!r}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
