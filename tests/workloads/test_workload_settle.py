"""The bench harness's wait for a quiet node between runs."""

from __future__ import annotations

import os
import subprocess
import sys

from workloads.run import QUIET_WINDOW_S, node_busy_s, settle

SPIN = "\n".join(
    [
        "import os, time",
        "os.nice(19)",
        "end = time.monotonic() + 30",
        "while time.monotonic() < end: pass",
    ]
)


def test_niced_work_keeps_the_node_from_being_quiet() -> None:
    """A tuner's last upload runs at nice 19: it is still work the next run would start beside,
    so settle waits through it (here, until its limit: the spinners outlast it)."""
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(os.cpu_count() or 1)]
    try:
        b0 = node_busy_s()
        waited = settle(limit_s=3 * QUIET_WINDOW_S)
        assert node_busy_s() > b0
        assert waited >= 3 * QUIET_WINDOW_S
    finally:
        for p in spinners:
            p.kill()
            p.wait()
