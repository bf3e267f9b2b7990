"""The demo (`python -m gateway.demo`), run as the README runs it, in a subprocess."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / "carrier_profiles" / "local-sim.toml"


def run_demo(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.demo", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=45,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def check_output(out: str, id_pattern: str) -> None:
    resps = re.findall(
        r"^submit_sm_resp .* msg +(\d+) +part (\d+)/(\d+) +id (\S+) +(\S+)$", out, re.M
    )
    receipts = re.findall(r"^receipt .* msg +(\d+) +part (\d+)/(\d+) +id (\S+) +(\S+)", out, re.M)
    assert len(resps) >= 12
    assert {status for *_, status in resps} == {"ESME_ROK"}
    assert all(re.fullmatch(id_pattern, message_id) for *_, message_id, _ in resps)
    # every part of every message got exactly one receipt, with its own message id
    parts = sorted(r[:4] for r in resps)
    assert sorted(r[:4] for r in receipts) == parts
    assert {stat for *_, stat in receipts} <= {"DELIVRD", "UNDELIV"}
    assert {msg for msg, *_ in resps} == {str(n) for n in range(1, 13)}
    assert any(int(total) > 1 for *_, total, _, _ in resps)  # the long Unicode message
    n = len(resps)
    assert re.search(rf"^  accepted +{n}/{n}$", out, re.M), out
    assert re.search(rf"^  receipts +{n}/{n} ", out, re.M), out
    assert "gatewayd stopped (exit 0)" in out


def test_demo_with_the_local_sim_profile() -> None:
    out = run_demo()
    check_output(out, r"[0-9a-f]+")
    assert re.search(r"^gatewayd ready: api=\S+, carriers=local-sim$", out, re.M)
    assert re.search(r"msg 11 +GSM ", out)  # € and brackets stay GSM (extension table)
    assert re.search(r"msg 12 +UCS-2 +\d parts", out)


def test_demo_with_sar_and_decimal_ids(tmp_path: Path) -> None:
    profile = tmp_path / "sar.toml"
    text = PROFILE.read_text()
    text = text.replace('segmentation = "udh8"', 'segmentation = "sar"')
    text = text.replace('id_format = "hex"', 'id_format = "decimal"')
    profile.write_text(text)
    out = run_demo("--profile", str(profile), "--fail-ratio", "0.5", "--seed", "3")
    check_output(out, r"[0-9]+")
    assert re.search(r"\(\d+ delivered, [1-9]\d* failed\)", out)
