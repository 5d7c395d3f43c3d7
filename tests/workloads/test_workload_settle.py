"""The bench harness's wait for a quiet node between runs."""

from __future__ import annotations

import os
import subprocess
import sys

from workloads.run import QUIET_WINDOW_S, leftovers, node_busy_s, settle

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


def test_it_waits_for_a_sessions_uploader_to_end() -> None:
    """A process naming a leftover mark (here a sleeper given the uploader's module name as an
    argument) is waited for until it exits, or until the limit."""
    mark = "autotune.tracking.follow-test-" + str(os.getpid())
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; print(flush=True); time.sleep(30)", mark],
        stdout=subprocess.PIPE,
    )
    try:
        # Its first line: it has exec'd (until then its command line is this process's).
        assert sleeper.stdout is not None and sleeper.stdout.readline() == b"\n"
        assert leftovers((mark.encode(),)) == [sleeper.pid]
        waited = settle(limit_s=1.0, quiet=1.1, marks=(mark.encode(),))
        assert waited >= 1.0  # still there at the limit
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.communicate()
    assert leftovers((mark.encode(),)) == []
