"""Read-ahead on our own loop device: found from the job's open files, verified, followed,
yielded to a person, restored; the root disk is never touched."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from actuator_kit import Job, Loop

from autotune.actuators import Actuators, DecisionLog, readahead
from autotune.config import Settings
from autotune.errors import UserError

pytestmark = pytest.mark.root


def test_found_from_open_files_applied_and_restored(
    loop: Loop, spawn: Callable[..., Job], settings: Settings
) -> None:
    job = spawn("--loaders", "1", "--open", str(loop.data))
    new = 1024 if loop.original_ra != 1024 else 2048
    with Actuators(job.target, settings, log=DecisionLog(console=False)) as act:
        assert act.defaults()["readahead"] == loop.original_ra
        got = act.apply({"readahead": float(new)}, reason="test")
        assert got["readahead"] == new
        assert loop.read_ahead_kb() == new
        act.follow()
        assert "readahead" not in act.disabled
    assert loop.read_ahead_kb() == loop.original_ra


def test_a_device_opened_later_gets_the_setting(
    loop: Loop, spawn: Callable[..., Job], settings: Settings
) -> None:
    job = spawn("--loaders", "0")  # reads nothing on a disk yet (the root disk is never tuned)
    with Actuators(job.target, settings, log=DecisionLog(console=False)) as act:
        assert act.inert()["readahead"] == "no block device found yet"
        act.apply({"readahead": 64.0})
        act.follow()  # scans the job's files: nothing on a tunable disk yet
        assert loop.read_ahead_kb() == loop.original_ra
        job.send(f"open {loop.data}")
        # Same processes, so the next scan comes with the rescan period, not at every follow.
        deadline = time.monotonic() + readahead.RESCAN_S + 2.0
        while loop.read_ahead_kb() != 64 and time.monotonic() < deadline:
            time.sleep(0.25)
            act.follow()
        assert loop.read_ahead_kb() == 64
    assert loop.read_ahead_kb() == loop.original_ra


def test_inert_until_the_job_opens_a_file_on_a_tunable_disk(
    loop: Loop, spawn: Callable[..., Job], settings: Settings
) -> None:
    job = spawn("--loaders", "0")
    with Actuators(job.target, settings, log=DecisionLog(console=False)) as act:
        assert "readahead" in act.inert()
        job.send(f"open {loop.data}")
        # The job's processes are the same: its files are looked at again within RESCAN_S.
        deadline = time.monotonic() + readahead.RESCAN_S + 2.0
        while "readahead" in act.inert() and time.monotonic() < deadline:
            time.sleep(0.25)
        assert "readahead" not in act.inert()
        assert loop.read_ahead_kb() == loop.original_ra  # looking changes nothing


def test_a_person_writing_read_ahead_wins(
    loop: Loop, spawn: Callable[..., Job], settings: Settings
) -> None:
    job = spawn("--loaders", "0", "--open", str(loop.data))
    try:
        with Actuators(job.target, settings, log=DecisionLog(console=False)) as act:
            act.apply({"readahead": 512.0})
            loop.set_read_ahead_kb(4096)  # a person, behind our back
            act.follow()
            assert "behind our back" in act.disabled["readahead"]
            act.apply({"readahead": 16.0})
            assert loop.read_ahead_kb() == 4096  # no longer touched
        assert loop.read_ahead_kb() == 4096  # and not restored over
    finally:
        loop.set_read_ahead_kb(loop.original_ra)


def test_explicit_device_that_does_not_exist(spawn: Callable[..., Job], settings: Settings) -> None:
    job = spawn("--loaders", "0")
    with pytest.raises(UserError, match="no block device 'nope0'"):
        Actuators(job.target, settings, devices=["nope0"])
