"""The service's state file: written whole, read back, a dead service's file not taken for a
live one, a foreign file one line; and how jobs are told apart under a slice."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autotune.errors import UserError
from autotune.service import slices
from autotune.service import state as st
from autotune.target import descendants, start_time


def _state(pid: int) -> st.ServiceState:
    return st.ServiceState(
        pid=pid, start=start_time(pid) or 0, cgroup="/x", model="m", interval_ms=500
    )


def test_a_live_service_state_round_trips_and_a_dead_ones_is_skipped(tmp_path: Path) -> None:
    live = _state(os.getpid())
    live.jobs.append(st.JobState(pid=1, start=1, command="python train.py", guard=st.TUNED))
    st.write(st.path_for(tmp_path, "live"), live)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    gone = _state(dead.pid)  # its start time, read while it still ran (or 0)
    dead.wait()
    st.write(st.path_for(tmp_path, "dead"), gone)
    (running,) = st.running(tmp_path)
    assert running == live and running.jobs[0].guard == "tuned"


def test_a_file_that_is_not_a_state_file_is_one_line(tmp_path: Path) -> None:
    bad = st.path_for(tmp_path, "bad")
    bad.write_text('{"pid": "x"}')
    with pytest.raises(UserError, match="is not an autotune service state file"):
        st.running(tmp_path)


def test_only_roots_outside_tuned_jobs_are_new_jobs() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess,sys; subprocess.run(['sleep','30'])"]
    )
    try:
        child = 0
        for _ in range(200):
            kids = descendants(parent.pid)
            if kids:
                child = kids[0]
                break
            time.sleep(0.05)
        assert child
        both = {parent.pid, child}
        assert [p for p, _ in slices.new_jobs(both, set(), set())] == [parent.pid]
        # The child alone in the slice (its parent moved out by the tuner) is still the job's.
        assert slices.new_jobs({child}, {parent.pid}, set()) == []
        assert [p for p, _ in slices.new_jobs({child}, set(), set())] == [child]
    finally:
        parent.kill()
        parent.wait()


def test_slice_names_and_keys(tmp_path: Path) -> None:
    assert slices.key(Path("/sys/fs/cgroup/cpu/training.slice")) == (
        "sys-fs-cgroup-cpu-training.slice"
    )
    with pytest.raises(UserError, match="not a cgroup directory"):
        slices.resolve(str(tmp_path))
    with pytest.raises(UserError, match=r"no cgroup named no-such-autotune\.slice"):
        slices.resolve("no-such-autotune.slice")
