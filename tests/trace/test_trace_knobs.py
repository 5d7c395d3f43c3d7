"""The recorder's knob reader agrees with read_knobs on a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import autotune.trace.knobs as knobs_module
from autotune.knobs.readback import read_knobs
from autotune.target import Target, descendants
from autotune.trace.knobs import KnobReader


def test_knob_reader_matches_read_knobs() -> None:
    # A parent holding a file open (so a block device is found) and one forked loader.
    code = "import os, sys, time; f = open(sys.executable, 'rb'); os.fork(); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        target = Target.from_pid(proc.pid)
        reader = KnobReader(target)
        for _ in range(3):
            got = reader()
            assert got == read_knobs(target)
        assert {"weight.trainer", "weight.loader", "cpus.trainer", "cpus.loader"} <= set(got)
    finally:
        for pid in descendants(proc.pid):
            os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()


def test_knob_values_are_read_every_call_while_the_process_tree_is_walked_less_often(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The process tree is walked again only every members_refresh_s; a knob a person changes on
    a known process shows at the next call, and a process the job starts after the walk once the
    delay has passed."""
    ncpus = os.cpu_count() or 1
    if ncpus < 2:
        pytest.skip("one CPU: no affinity narrower than the pool")
    code = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n    time.sleep(60); os._exit(0)\n"
        "sys.stdin.readline()\n"  # the second loader comes on a line from the test
        "if os.fork() == 0:\n    time.sleep(60); os._exit(0)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, text=True)
    try:
        target = Target.from_pid(proc.pid)
        while not descendants(proc.pid):
            time.sleep(0.01)
        reader = KnobReader(target, members_refresh_s=30)
        assert reader()["cpus.loader"] == 1.0
        (first,) = descendants(proc.pid)
        os.sched_setaffinity(first, {0})
        assert reader()["cpus.loader"] == 1 / ncpus  # read again, not remembered
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
        while len(descendants(proc.pid)) < 2:
            time.sleep(0.01)
        # The new loader (every CPU) is not known until the tree is walked again, 30 s on.
        assert reader()["cpus.loader"] == 1 / ncpus
        later = time.monotonic() + 31
        monkeypatch.setattr(knobs_module.time, "monotonic", lambda: later)
        assert reader()["cpus.loader"] == 1.0
    finally:
        for pid in descendants(proc.pid):
            os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()
