"""`pip install .` builds the native extension into the wheel with the console scripts.

The wheel is built with build isolation, so Cython comes from pyproject's build requirements."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_has_native_extension_and_console_scripts(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("gatewayd-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "gateway/smpp/_pure_codec.py" in names
    native = (
        "gateway/smpp/_native_codec",
        "gateway/store/_native_statements",
        "gateway/store/_native_writer",
    )
    assert all(any(n.startswith(m) and n.endswith(".so") for n in names) for m in native)
    assert "gateway/store/statements.py" in names
    assert "gateway/smsc_sim/example.toml" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    for script in ("gatewayd =", "gatewayctl =", "gateway-smsc-sim ="):
        assert script in scripts
