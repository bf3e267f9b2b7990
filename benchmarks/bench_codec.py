"""SMPP codec benchmark: the native codec against its pure-Python twin and smpplib 2.2.4.

    .venv/bin/python benchmarks/bench_codec.py [--quick] [--fuzz [N]]

Workloads: a typical submit_sm (120-character GSM text, addresses, registered_delivery=1) and a
delivery-receipt deliver_sm (esm_class 0x04, receipt text, receipted_message_id and
message_state TLVs). For each codec and operation it measures PDUs/second (median of repeated
timeit batches) and CPU instructions per PDU with callgrind: a child process doing K operations
minus one doing none, divided by K. Python objects go in and out (encode takes a PDU object,
decode returns one). Then it decodes N random mutations of valid PDUs with each of our codecs
and checks that nothing but a typed PduDecodeError was ever raised, and that both agree.

--quick: short timings, no callgrind, 10,000 fuzz inputs. --fuzz [N]: only the fuzz run
(N defaults to 100,000). Targets, by instruction count: native >= 100x smpplib and >= 4x pure.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
import timeit
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import repeat
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import smpplib.smpp  # noqa: E402

from gateway.smpp import _pure_codec as pure  # noqa: E402
from gateway.smpp.constants import CommandStatus, MessageState, Tag  # noqa: E402
from gateway.smpp.errors import PduDecodeError  # noqa: E402
from gateway.smpp.pdu import DeliverSm, Pdu, SubmitSm  # noqa: E402

try:
    from gateway.smpp import _native_codec as native
except ImportError as exc:
    sys.exit(f"the native codec is not built ({exc}): .venv/bin/python setup.py build_ext -i")

CODECS = ("native", "pure", "smpplib")
OPERATIONS = ("encode", "decode")
WORKLOADS = ("submit_sm", "receipt")
TARGET_VS_SMPPLIB = 100.0
TARGET_VS_PURE = 4.0
# Operations per callgrind child: enough to dwarf the start-up noise, few enough to be quick.
CALLGRIND_OPS = {"native": 20_000, "pure": 1_000, "smpplib": 200}

# Plain ASCII letters, digits and punctuation are the same octets in the GSM 03.38 default
# alphabet (unpacked, data_coding 0).
TEXT = (
    "Your verification code is 482913. It expires in 10 minutes. "
    "Do not share this code with anyone, not even with our staff."
)
assert len(TEXT) == 120, len(TEXT)
MESSAGE_ID = "4f2a9c17e0b34d51"
RECEIPT = (
    f"id:{MESSAGE_ID} sub:001 dlvrd:001 submit date:2405011200 done date:2405011201 "
    f"stat:DELIVRD err:000 text:{TEXT[:20]}"
)
ADDRESSES = {
    "source_addr_ton": 5,
    "source_addr_npi": 0,
    "source_addr": "MyBrand",
    "dest_addr_ton": 1,
    "dest_addr_npi": 1,
    "destination_addr": "447700900123",
}


def workload_pdu(workload: str) -> Pdu:
    if workload == "submit_sm":
        return SubmitSm(
            sequence_number=7, registered_delivery=1, short_message=TEXT.encode(), **ADDRESSES
        )
    return DeliverSm(
        sequence_number=8,
        esm_class=0x04,
        short_message=RECEIPT.encode(),
        tlvs={Tag.MESSAGE_STATE: MessageState.DELIVERED, Tag.RECEIPTED_MESSAGE_ID: MESSAGE_ID},
        **ADDRESSES,
    )


class _SmpplibClient:
    """What smpplib's PDU classes ask of a client: a sequence counter (smpplib takes a new
    PDU's sequence_number from it, ignoring a ``sequence`` argument)."""

    def __init__(self, sequence: int = 1) -> None:
        self.sequence = sequence

    def next_sequence(self) -> int:
        return self.sequence


def _smpplib_command(workload: str) -> tuple[str, dict[str, Any]]:
    pdu = workload_pdu(workload)
    fields: dict[str, Any] = {
        "client": _SmpplibClient(pdu.sequence_number),
        "short_message": pdu.short_message,
        **ADDRESSES,
    }
    if workload == "submit_sm":
        return "submit_sm", {**fields, "registered_delivery": 1}
    extra = {"esm_class": 0x04, "message_state": 2, "receipted_message_id": MESSAGE_ID}
    return "deliver_sm", {**fields, **extra}


def operation(codec: str, op: str, workload: str) -> tuple[Callable[[Any], Any], Any]:
    """One operation as (function, argument): function(argument) does it once."""
    frame = pure.encode_pdu(workload_pdu(workload))
    if codec == "smpplib":
        if op == "decode":
            client = _SmpplibClient()
            return (lambda data: smpplib.smpp.parse_pdu(data, client=client)), frame
        command, kwargs = _smpplib_command(workload)
        return (lambda kw: smpplib.smpp.make_pdu(command, **kw).generate()), kwargs
    module = native if codec == "native" else pure
    if op == "decode":
        return module.decode_pdu, frame
    return module.encode_pdu, workload_pdu(workload)


def check_workloads() -> None:
    """All three codecs agree on the workloads' wire form (a sanity check of the benchmark)."""
    for workload in WORKLOADS:
        frame = pure.encode_pdu(workload_pdu(workload))
        for codec in CODECS:
            encode, arg = operation(codec, "encode", workload)
            assert encode(arg) == frame, (codec, workload)
        assert native.decode_pdu(frame) == workload_pdu(workload)
        parsed = smpplib.smpp.parse_pdu(frame, client=_SmpplibClient())
        assert parsed.short_message == workload_pdu(workload).short_message


# ---------------------------------------------------------------------------------------------
# Measurements


def pdus_per_second(codec: str, op: str, workload: str, quick: bool) -> float:
    function, arg = operation(codec, op, workload)
    timer = timeit.Timer("function(arg)", globals={"function": function, "arg": arg})
    number, _ = timer.autorange()
    batch_seconds = 0.02 if quick else 0.2
    number = max(1, int(number * batch_seconds / 0.2))
    times = timer.repeat(repeat=5 if quick else 15, number=number)
    return number / statistics.median(times)


def _run_child(codec: str, op: str, workload: str, count: int) -> None:
    """The callgrind child: builds every operation (so the start-up is the same in every
    child), runs each once, then runs the chosen one ``count`` times."""
    operations = {
        (c, o, w): operation(c, o, w) for c in CODECS for o in OPERATIONS for w in WORKLOADS
    }
    for function, arg in operations.values():
        function(arg)
    function, arg = operations[(codec, op, workload)]
    for _ in repeat(None, count):
        function(arg)


def callgrind_instructions(codec: str, op: str, workload: str, count: int) -> int:
    """Total instructions of a child process doing ``count`` operations."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        codec,
        op,
        workload,
        str(count),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    match = re.search(r"Collected : (\d+)", result.stderr)
    if match is None:
        raise RuntimeError(f"no callgrind total in:\n{result.stderr}")
    return int(match.group(1))


def instructions_per_pdu(
    cases: list[tuple[str, str, str]],
) -> tuple[dict[tuple[str, str, str], float], float]:
    """Instructions per operation for each case, and the start-up noise (instructions)."""
    jobs = {("baseline", str(i)): ("native", "encode", "submit_sm", 0) for i in range(2)}
    for case in cases:
        jobs[case] = (*case, CALLGRIND_OPS[case[0]])
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counts = pool.map(lambda job: callgrind_instructions(*job), jobs.values())
        totals = dict(zip(jobs, counts, strict=True))
    baselines = [totals[("baseline", "0")], totals[("baseline", "1")]]
    baseline = statistics.mean(baselines)
    per_pdu = {case: (totals[case] - baseline) / CALLGRIND_OPS[case[0]] for case in cases}
    return per_pdu, abs(baselines[0] - baselines[1])


# ---------------------------------------------------------------------------------------------
# Fuzz


def valid_frames(count: int) -> list[bytes]:
    """``count`` valid encodings drawn from the shared hypothesis strategy (fixed seed)."""
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from pdu_strategies import pdu_bytes

    frames: list[bytes] = []

    @seed(20240501)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(pdu_bytes())
    def collect(frame: bytes) -> None:
        frames.append(frame)

    collect()
    return frames


def fuzz(count: int) -> bool:
    """Decodes ``count`` mutated frames with both codecs; True when all is well."""
    from pdu_strategies import mutate

    rng = random.Random(20240501)
    pool = valid_frames(500)
    started = time.perf_counter()
    inputs = []
    for _ in range(count):
        frame = rng.choice(pool)
        for _ in range(rng.randint(1, 3)):
            frame = mutate(frame, rng.randint)
        inputs.append(frame)
    print(
        f"fuzz: {count:,} mutated frames from {len(pool)} valid PDUs of every type "
        f"(generated in {time.perf_counter() - started:.1f} s)"
    )
    outcomes: dict[str, list[Any]] = {}
    ok = True
    for name, module in (("native", native), ("pure", pure)):
        counts: Counter[str] = Counter()
        results: list[Any] = []
        started = time.perf_counter()
        for frame in inputs:
            try:
                results.append(module.decode_pdu(frame))
                counts["decoded"] += 1
            except PduDecodeError as exc:
                results.append(exc)
                counts[f"PduDecodeError {CommandStatus(exc.command_status).name}"] += 1
            except Exception as exc:  # the point is to count these
                results.append(exc)
                counts[f"UNTYPED {type(exc).__name__}"] += 1
        elapsed = time.perf_counter() - started
        outcomes[name] = results
        untyped = sum(n for key, n in counts.items() if key.startswith("UNTYPED"))
        ok = ok and untyped == 0
        print(
            f"  {name}: {elapsed:.2f} s, {count / elapsed:,.0f} frames/s; "
            f"{untyped or 'nothing'} raised other than PduDecodeError"
        )
        for key, n in sorted(counts.items(), key=lambda item: -item[1]):
            print(f"    {n:>8,}  {key}")
    pairs = zip(outcomes["native"], outcomes["pure"], strict=True)
    mismatches = sum(a != b for a, b in pairs)
    print(f"  native and pure: {f'DISAGREE on {mismatches} inputs' if mismatches else 'agree'}")
    result = ok and not mismatches
    print(f"fuzz: {'PASS' if result else 'FAIL'}")
    return result


# ---------------------------------------------------------------------------------------------
# Report


def report(quick: bool) -> bool:
    cases = [(c, o, w) for w in WORKLOADS for o in OPERATIONS for c in CODECS]
    rates = {case: pdus_per_second(*case, quick=quick) for case in cases}
    counts: dict[tuple[str, str, str], float] = {}
    use_callgrind = not quick and shutil.which("valgrind") is not None
    if use_callgrind:
        print("measuring instructions with callgrind (a few minutes)...", flush=True)
        counts, noise = instructions_per_pdu(cases)
        print(f"the two empty callgrind runs differ by {noise:,.0f} instructions")
    elif not quick:
        print("valgrind not found: instruction counts skipped; ratios are by time")
    basis = "instructions" if counts else "time"

    def ratio(case: tuple[str, str, str], other: str) -> float:
        _, op, workload = case
        if counts:
            return counts[(other, op, workload)] / counts[case]
        return rates[case] / rates[(other, op, workload)]

    header = ("workload", "operation", "codec", "PDUs/s", "instr/PDU", "vs smpplib", "vs pure")
    print(f"\n| {' | '.join(header)} |")
    print("|" + "|".join("---" for _ in header) + "|")
    for case in cases:
        codec, op, workload = case
        instructions = f"{counts[case]:,.0f}" if counts else "-"
        row = (
            workload,
            op,
            codec,
            f"{rates[case]:,.0f}",
            instructions,
            f"{ratio(case, 'smpplib'):,.1f}x",
            f"{ratio(case, 'pure'):,.1f}x",
        )
        print(f"| {' | '.join(row)} |")
    verdicts = []
    for workload in WORKLOADS:
        for op in OPERATIONS:
            case = ("native", op, workload)
            vs_smpplib, vs_pure = ratio(case, "smpplib"), ratio(case, "pure")
            passed = vs_smpplib >= TARGET_VS_SMPPLIB and vs_pure >= TARGET_VS_PURE
            verdicts.append(passed)
            print(
                f"{'PASS' if passed else 'FAIL'}: native {op} {workload}: "
                f"{vs_smpplib:,.1f}x smpplib (target {TARGET_VS_SMPPLIB:.0f}x), "
                f"{vs_pure:,.1f}x pure (target {TARGET_VS_PURE:.0f}x), by {basis}"
            )
    if not counts:
        print("(time-based ratios are indicative only; the targets are judged by instructions)")
    return all(verdicts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short timings, no callgrind")
    parser.add_argument(
        "--fuzz",
        type=int,
        nargs="?",
        const=100_000,
        metavar="N",
        help="only fuzz, with N inputs (default 100,000)",
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        codec, op, workload, count = args.child
        _run_child(codec, op, workload, int(count))
        return 0
    if args.fuzz is not None:
        return 0 if fuzz(args.fuzz) else 1
    check_workloads()
    print(
        f"python {sys.version.split()[0]}, smpplib {_smpplib_version()}, "
        f"{os.cpu_count()} CPUs, {_cpu_model()}"
    )
    targets_met = report(args.quick)
    print()
    fuzz_ok = fuzz(10_000 if args.quick else 100_000)
    return 0 if targets_met and fuzz_ok else 1


def _smpplib_version() -> str:
    from importlib.metadata import version

    return version("smpplib")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
