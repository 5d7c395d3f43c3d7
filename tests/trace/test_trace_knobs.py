"""The recorder's knob reader agrees with read_knobs on a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

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
