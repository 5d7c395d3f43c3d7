"""The noisy neighbour: its CPU hogs run while it is on and are all gone after."""

from __future__ import annotations

import os
import shutil

import psutil
import pytest

from autotune.target import descendants
from workloads.neighbour import Neighbour

pytestmark = pytest.mark.skipif(shutil.which("stress-ng") is None, reason="needs stress-ng")


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_neighbour_runs_its_hogs_and_stops_them_all() -> None:
    with Neighbour(cpus=2) as n:
        pids = n.pids()
        assert len(pids) == 3  # stress-ng and one worker per CPU hog
        assert all(_running(p) for p in pids)
    assert n.pids() == []
    assert descendants(os.getpid()) == []
    assert not any(_running(p) for p in pids)


def test_neighbour_is_stopped_when_the_block_fails() -> None:
    with pytest.raises(RuntimeError), Neighbour(cpus=1) as n:
        pids = n.pids()
        raise RuntimeError("the job failed")
    assert descendants(os.getpid()) == []
    assert not any(_running(p) for p in pids)
