"""The systemd unit shipped with the project passes `systemd-analyze verify` (which runs here
although systemd is not PID 1)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    unit = Path(__file__).resolve().parents[2] / "systemd" / "autotune-tune@.service"
    (tmp_path / unit.name).write_text(unit.read_text())
    r = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "autotune-tune@training.slice.service")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and r.stderr == "", r.stderr
