"""The tuner's summary reports its own peak memory, not the one it inherits from its parent."""

from __future__ import annotations

import subprocess
import sys

from autotune.daemon.loop import peak_rss_mb


def test_a_child_of_a_large_parent_reports_its_own_peak() -> None:
    ballast = bytearray(256 << 20)
    ballast[:: 1 << 12] = b"\x01" * len(range(0, len(ballast), 1 << 12))  # touch every page
    code = (
        "import resource; from autotune.daemon.loop import peak_rss_mb; "
        "print(peak_rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    own, inherited = (float(x) for x in out.stdout.split())
    assert inherited >= 256  # ru_maxrss carries the parent's peak across fork and exec
    assert 0 < own < 128  # VmHWM is the child's own
    del ballast
    assert peak_rss_mb() > 0
