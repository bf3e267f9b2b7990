"""The demo: a small batch of SMS through the SMSC simulator, receipts included.

Starts gateway-smsc-sim in-process (or, with --external, uses the one in the carrier profile's
[connection]), binds a transceiver with a deliberately tiny ESME client built on our codec,
submits short GSM messages, one with GSM extension characters and one long Unicode message
segmented as the profile says, prints every submit_sm_resp and delivery receipt, then unbinds
and prints a summary. Exit status 0 when every part was accepted and got its receipt.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.smpp.codec import FrameDecoder, encode_pdu
from gateway.smpp.constants import MESSAGE_TYPE_MASK, CommandId, EsmClass
from gateway.smpp.constants import CommandStatus as S
from gateway.smpp.errors import FramingError, PduDecodeError
from gateway.smpp.pdu import (
    BindTransceiver,
    DeliverSm,
    DeliverSmResp,
    EnquireLinkResp,
    Pdu,
    SubmitSm,
    Unbind,
    UnbindResp,
)
from gateway.smpp.receipts import Receipt, normalise_message_id, parse_receipt
from gateway.smpp.segmentation import Segment, SegmentMethod, segment
from gateway.smpp.text import decode_text, encode_text
from gateway.smsc_sim import Account, SimConfig, SmscSimulator
from gateway.smsc_sim.runner import run

DEFAULT_PROFILE = Path(__file__).resolve().parent.parent / "carrier_profiles" / "local-sim.toml"
CODING_NAMES = {0: "GSM", 1: "IA5", 3: "Latin-1", 8: "UCS-2"}
DESTINATION = "4477009000{:02d}"
LONG_TEXT = (
    "Grüße aus Zürich 👋 Your parcel 📦 is on its way and arrives tomorrow between 9:00 and "
    "12:00. Track it at example.com/t/8c1f or reply STOP to opt out 🙏"
)


def status_name(status: int) -> str:
    try:
        return S(status).name
    except ValueError:
        return f"0x{status:08x}"


@dataclass
class Profile:
    host: str
    port: int
    system_id: str
    password: str
    system_type: str
    segmentation: SegmentMethod
    encodings: tuple[int, ...]
    source_addr: str
    id_format: str

    @classmethod
    def load(cls, path: Path) -> Profile:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
        connection, account = data["connection"], data["account"]
        submit, receipts = data.get("submit", {}), data.get("receipts", {})
        return cls(
            host=connection["host"],
            port=int(connection["port"]),
            system_id=account["system_id"],
            password=account["password"],
            system_type=account.get("system_type", ""),
            segmentation=SegmentMethod(submit.get("segmentation", "udh8")),
            encodings=tuple(submit.get("encodings", (0, 3, 8))),
            source_addr=submit.get("source_addr", "GWDEMO"),
            id_format=receipts.get("id_format", "hex"),
        )


@dataclass
class Part:
    message: int  # 1-based message number
    number: int
    total: int
    sequence: int = 0
    message_id: str = ""  # normalised
    status: int | None = None
    receipt: Receipt | None = None


class MiniEsme:
    """Just enough ESME for the demo: requests matched to responses by sequence number,
    deliver_sm handed to a callback and acknowledged, enquire_link and unbind answered."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_deliver: Callable[[DeliverSm], None],
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._on_deliver = on_deliver
        self._sequences = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Pdu]] = {}
        self._task = asyncio.create_task(self._read_loop())

    def send(self, pdu: Pdu) -> asyncio.Future[Pdu]:
        pdu.sequence_number = next(self._sequences)
        future: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        self._pending[pdu.sequence_number] = future
        self._writer.write(encode_pdu(pdu))
        return future

    async def close(self) -> None:
        self._writer.close()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _read_loop(self) -> None:
        decoder = FrameDecoder()
        try:
            while data := await self._reader.read(65536):
                decoder.feed(data)
                while True:
                    try:
                        pdu = decoder.next_pdu()
                    except FramingError:
                        raise
                    except PduDecodeError as exc:
                        print(f"  ! undecodable PDU from the SMSC: {exc}")
                        continue
                    if pdu is None:
                        break
                    self._handle(pdu)
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("the SMSC closed the connection"))

    def _handle(self, pdu: Pdu) -> None:
        if pdu.is_response:
            future = self._pending.pop(pdu.sequence_number, None)
            if future is not None and not future.done():
                future.set_result(pdu)
        elif pdu.command_id == CommandId.DELIVER_SM:
            assert isinstance(pdu, DeliverSm)
            self._on_deliver(pdu)
            self._reply(DeliverSmResp(sequence_number=pdu.sequence_number))
        elif pdu.command_id == CommandId.ENQUIRE_LINK:
            self._reply(EnquireLinkResp(sequence_number=pdu.sequence_number))
        elif pdu.command_id == CommandId.UNBIND:
            self._reply(UnbindResp(sequence_number=pdu.sequence_number))

    def _reply(self, pdu: Pdu) -> None:
        self._writer.write(encode_pdu(pdu))


def build_batch(count: int) -> list[str]:
    texts = [f"Hello from gatewayd, demo message {n}" for n in range(1, count + 1)]
    texts.append("Offer: 5€ off [today only] {code: SAVE5} ~ reply ^YES^")
    texts.append(LONG_TEXT)
    return texts


class Demo:
    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.parts: list[Part] = []
        self.by_id: dict[str, Part] = {}
        self.early_receipts: dict[str, Receipt] = {}
        self.all_receipts = asyncio.Event()
        self.mo_count = 0

    async def run(self, host: str, port: int, count: int, timeout: float) -> bool:
        profile = self.profile
        started = time.monotonic()
        reader, writer = await asyncio.open_connection(host, port)
        esme = MiniEsme(reader, writer, self.on_deliver)
        try:
            bind = BindTransceiver(
                system_id=profile.system_id,
                password=profile.password,
                system_type=profile.system_type,
            )
            resp = await asyncio.wait_for(esme.send(bind), timeout)
            print(f"bind_transceiver as {profile.system_id}: {status_name(resp.command_status)}")
            if resp.command_status != S.ESME_ROK:
                return False
            submits = self.prepare(build_batch(count))
            print()
            waits = [self.submit(esme, part, pdu) for part, pdu in submits]
            await asyncio.wait_for(asyncio.gather(*waits), timeout)
            try:
                await asyncio.wait_for(self.all_receipts.wait(), timeout)
            except TimeoutError:
                print(f"  ! not every receipt arrived within {timeout:g} s")
            unbind = await asyncio.wait_for(esme.send(Unbind()), timeout)
            print(f"\nunbind: {status_name(unbind.command_status)}")
        finally:
            await esme.close()
        return self.summary(time.monotonic() - started)

    def prepare(self, texts: list[str]) -> list[tuple[Part, SubmitSm]]:
        profile = self.profile
        print(f"{len(texts)} messages, long ones segmented with {profile.segmentation}:")
        submits: list[tuple[Part, SubmitSm]] = []
        for number, text in enumerate(texts, start=1):
            encoded = encode_text(text, profile.encodings)
            segments = segment(encoded, profile.segmentation, reference=number)
            coding = CODING_NAMES.get(encoded.data_coding, str(encoded.data_coding))
            shown = text if len(text) <= 48 else text[:45] + "..."
            noun = "part " if len(segments) == 1 else "parts"
            print(f"  msg {number:>2}  {coding:<7} {len(segments)} {noun}  {shown}")
            for seg in segments:
                part = Part(number, seg.part_number, seg.total_parts)
                self.parts.append(part)
                submits.append((part, self.submit_pdu(number, encoded.data_coding, seg)))
        return submits

    def submit_pdu(self, number: int, data_coding: int, seg: Segment) -> SubmitSm:
        return SubmitSm(
            source_addr_ton=5,
            source_addr_npi=0,
            source_addr=self.profile.source_addr,
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr=DESTINATION.format(number),
            esm_class=EsmClass.UDHI if seg.udhi else EsmClass.DEFAULT,
            registered_delivery=1,
            data_coding=data_coding,
            short_message=seg.short_message,
            tlvs=dict(seg.tlvs),
        )

    async def submit(self, esme: MiniEsme, part: Part, pdu: SubmitSm) -> None:
        future = esme.send(pdu)
        part.sequence = pdu.sequence_number
        resp = await future
        part.status = resp.command_status
        raw_id = getattr(resp, "message_id", "")
        if part.status == S.ESME_ROK:
            part.message_id = normalise_message_id(raw_id, self.profile.id_format)
            self.by_id[part.message_id] = part
        print(
            f"submit_sm_resp  seq {part.sequence:>3}  msg {part.message:>2}  "
            f"part {part.number}/{part.total}  id {raw_id or '-':<12} {status_name(part.status)}"
        )
        early = self.early_receipts.pop(part.message_id, None)
        if early is not None:
            self.record_receipt(part, early)
        self.check_done()

    def on_deliver(self, pdu: DeliverSm) -> None:
        if pdu.esm_class & MESSAGE_TYPE_MASK != EsmClass.SMSC_DELIVERY_RECEIPT:
            self.mo_count += 1
            try:
                text = decode_text(pdu.data_coding, pdu.short_message)
            except ValueError:
                text = pdu.short_message.hex()
            print(f"mo              from {pdu.source_addr}: {text}")
            return
        receipt = parse_receipt(pdu.short_message, pdu.tlvs)
        message_id = normalise_message_id(receipt.message_id, self.profile.id_format)
        part = self.by_id.get(message_id)
        if part is None:  # its submit_sm_resp has not been read yet
            self.early_receipts[message_id] = receipt
        else:
            self.record_receipt(part, receipt)

    def record_receipt(self, part: Part, receipt: Receipt) -> None:
        part.receipt = receipt
        print(
            f"receipt                 msg {part.message:>2}  part {part.number}/{part.total}  "
            f"id {receipt.message_id:<12} {receipt.stat_text:<8} err {receipt.error_code}"
        )
        self.check_done()

    def check_done(self) -> None:
        answered = all(p.status is not None for p in self.parts)
        if answered and all(p.receipt or p.status != S.ESME_ROK for p in self.parts):
            self.all_receipts.set()

    def summary(self, elapsed: float) -> bool:
        parts = self.parts
        messages = len({p.message for p in parts})
        accepted = sum(1 for p in parts if p.status == S.ESME_ROK)
        receipts = [p.receipt for p in parts if p.receipt is not None]
        delivered = sum(1 for r in receipts if r.stat_text == "DELIVRD")
        print("\nsummary")
        print(f"  messages   {messages} ({len(parts)} submit_sm)")
        print(f"  accepted   {accepted}/{len(parts)}")
        print(
            f"  receipts   {len(receipts)}/{accepted}  "
            f"({delivered} delivered, {len(receipts) - delivered} failed)"
        )
        if self.mo_count:
            print(f"  mo         {self.mo_count}")
        print(f"  elapsed    {elapsed:.2f} s")
        return accepted == len(parts) and len(receipts) == accepted


def simulator_config(profile: Profile, args: argparse.Namespace) -> SimConfig:
    return SimConfig(
        host=profile.host,
        port=0,
        accounts=(Account(profile.system_id, profile.password),),
        id_format=profile.id_format,
        receipt_delay=args.receipt_delay,
        fail_ratio=args.fail_ratio,
        seed=args.seed,
        latency_ms=2.0,
        keep_submitted=0,
    )


async def amain(args: argparse.Namespace) -> bool:
    profile = Profile.load(Path(args.profile))
    demo = Demo(profile)
    if args.external:
        print(f"SMSC at {profile.host}:{profile.port} (external)")
        return await demo.run(profile.host, profile.port, args.count, args.timeout)
    async with SmscSimulator(simulator_config(profile, args)) as sim:
        print(
            f"SMSC simulator on {sim.host}:{sim.port} (in-process; seed {sim.seed}, "
            f"fail ratio {args.fail_ratio:g}, receipt delay {args.receipt_delay:g} s)"
        )
        return await demo.run(sim.host, sim.port, args.count, args.timeout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.demo", description=__doc__)
    add = parser.add_argument
    add("--profile", default=str(DEFAULT_PROFILE), help="carrier profile (TOML)")
    add("--external", action="store_true", help="use the SMSC of the profile's [connection]")
    add("--count", type=int, default=10, help="short GSM messages in the batch (default 10)")
    add("--fail-ratio", type=float, default=0.1, help="simulated UNDELIV share (default 0.1)")
    add("--receipt-delay", type=float, default=0.2, help="simulated receipt delay in seconds")
    add("--seed", type=int, default=1, help="simulator seed (default 1)")
    add("--timeout", type=float, default=10.0, help="seconds to wait for answers")
    args: Any = parser.parse_args(argv)
    try:
        ok = run(amain(args))
    except (OSError, ConnectionError, TimeoutError) as exc:
        print(f"demo failed: {exc!r}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
