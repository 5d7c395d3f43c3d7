"""autotune.system.busy: other tasks' share of the CPUs, from /proc, on real burning processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from autotune.system.busy import OthersBusy

SPIN = "import time\nend = time.monotonic() + 30\nwhile time.monotonic() < end: pass\n"


@pytest.fixture
def burners() -> Iterator[list[int]]:
    """One CPU-bound process per CPU, for 30 s at most (killed at the test's end)."""
    procs = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(os.cpu_count() or 1)]
    try:
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_other_tasks_burning_every_cpu_are_seen_and_the_jobs_own_time_is_not(
    burners: list[int],
) -> None:
    others = OthersBusy(list).share(least_s=0.3)  # the burners are someone else's
    mine = OthersBusy(lambda: burners).share(least_s=0.3)  # the burners are the job
    assert others is not None and mine is not None
    assert others >= 0.5  # one burner per CPU: most of the node, whatever else runs
    assert mine <= others - 0.25  # the same node with the burners counted as the job's


def test_a_job_process_that_ends_during_the_window_is_no_error() -> None:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    busy = OthersBusy(lambda: [p.pid])
    p.wait()
    share = busy.share(least_s=0.05)
    assert share is not None and 0.0 <= share <= 1.0
