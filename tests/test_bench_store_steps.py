"""`benchmarks/bench_store.py --steps` runs: the command RESULTS.md quotes for the writer's
compiled steps keeps working (a tiny replay; its figures are not judged here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(
    os.environ.get("GATEWAY_PURE", "") not in ("", "0"), reason="compares with the native build"
)
def test_the_steps_replay_prints_both_sides(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_store.py"), "--steps", "100",
         "--repeats", "1", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert [row.split("|")[1].strip() for row in rows[1:]] == [
        "accept", "resp", "receipt", "commit", "total",
    ]  # fmt: skip
    assert list(tmp_path.iterdir()) == []  # its databases are removed
