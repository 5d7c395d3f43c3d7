"""autotune.system.busy: other tasks' share of the CPUs, from /proc, on real burning processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from autotune.system.busy import OthersBusy, Window
from autotune.telemetry import procread

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


def _burned_ns(pids: list[int]) -> int:
    """The CPU time ``pids`` have used so far, read from /proc directly."""
    return sum(procread.process_cpu_ns(p) or 0 for p in pids)


def test_other_tasks_burning_every_cpu_are_seen_and_the_jobs_own_time_is_not(
    burners: list[int],
) -> None:
    # What the burners get depends on what else runs (make check's other workers take their
    # share: once they got 0.13 of a 0.63 s window), so their time is measured beside the
    # windows, which must account for it, not assumed.
    before = _burned_ns(burners)
    theirs, mine = OthersBusy(list), OthersBusy(lambda: burners)  # the same window, twice
    a, b = theirs.window(least_s=1.0), mine.window(least_s=1.0)
    burned = _burned_ns(burners) - before
    assert a is not None and b is not None
    assert a.share >= 0.5  # one burner per CPU: most of the node, whatever else runs
    assert burned >= 0.05 * b.capacity_ns  # they ran (a tenth of a CPU-second at least)
    # Counted as the job's, the burners' time is all there (b's window is inside the reads
    # around it; the little outside it, the reads themselves) ...
    assert 0.7 * burned <= b.job_ns <= burned
    # ... and leaves other tasks' (whatever else runs here, the suite's other workers
    # included, is in both; a's window ends a moment before b's).
    assert a.others_ns - b.others_ns >= 0.5 * b.job_ns


def test_other_tasks_at_a_higher_nice_value_are_not_counted() -> None:
    """A burner per CPU at nice 19 (say, the last session's upload process soaking up what is
    left) is not other tasks' demand: its time is in /proc/stat's nice column, left out."""
    spin = f"import os\nos.nice(19)\n{SPIN}"
    procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(os.cpu_count() or 1)]
    try:
        time.sleep(0.2)  # past their start, at nice 19
        all0 = procread.cpu_busy_ns()
        w = OthersBusy(list).window(least_s=0.3)
        all1 = procread.cpu_busy_ns()
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert w is not None and all0 is not None and all1 is not None
    # Every CPU ran something the whole window (the burners at least); the niced share is not
    # in others' time (whatever else runs here, the suite's warm-up included, takes from it).
    assert (all1 - all0) - (w.others_ns + w.own_ns + w.job_ns) >= 0.25 * w.capacity_ns


@pytest.mark.parametrize(
    ("others", "own", "job", "share"),
    [
        (1.0, 0.0, 0.0, 1.0),  # a neighbour with the node to itself
        (0.5, 0.4, 0.1, 1.0),  # it took all a tuner and a job starting beside it left
        (0.33, 0.5, 0.17, 0.66),  # ... with what was left below half the node
        (0.1, 0.65, 0.4, 0.2),  # two ticks of someone else's on a node the job fills: quiet
        (0.1, 0.0, 0.4, 1 / 6),  # a job alone on a node it does not fill
    ],
)
def test_the_share_is_of_what_the_tuner_and_the_job_left(
    others: float, own: float, job: float, share: float
) -> None:
    cap = 1_000_000_000
    w = Window(int(others * cap), int(own * cap), int(job * cap), cap)
    assert w.share == pytest.approx(share, abs=1e-6)


def test_a_job_process_that_ends_during_the_window_is_no_error() -> None:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    busy = OthersBusy(lambda: [p.pid])
    p.wait()
    share = busy.share(least_s=0.05)
    assert share is not None and 0.0 <= share <= 1.0


def test_others_that_take_all_the_job_leaves_them_are_a_busy_node(burners: list[int]) -> None:
    # One burner per CPU for the job and as many for someone else: each side gets about half of
    # the node, and the others took all the job left them (a share of the node would say half).
    job = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(os.cpu_count() or 1)]
    try:
        share = OthersBusy(lambda: [p.pid for p in job]).share(least_s=0.3)
    finally:
        for p in job:
            p.kill()
            p.wait()
    assert share is not None and share >= 0.75


def test_a_job_at_a_higher_nice_value_is_not_taken_from_other_tasks() -> None:
    # A niced job's user time is in /proc/stat's nice column, which others' time leaves out:
    # subtracted whole, a job of one niced burner per CPU made others' time about minus the
    # node (a quieter node than any).
    spin = f"import os\nos.nice(10)\n{SPIN}"
    job = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(os.cpu_count() or 1)]
    try:
        time.sleep(0.2)  # past their start, at nice 10
        w = OthersBusy(lambda: [p.pid for p in job]).window(least_s=0.3)
    finally:
        for p in job:
            p.kill()
            p.wait()
    assert w is not None
    # Counted whole as the job's, in what it left. A quarter, not half: beside `make check`'s
    # other pytest workers (nice 0) the burners at nice 10 got 0.48 of the node in one run.
    assert w.job_ns >= 0.25 * w.capacity_ns
    # The bug subtracted the job's niced time again: others at about minus the job's share.
    assert w.others_ns >= -0.1 * w.capacity_ns  # a tick or two of rounding, no more
