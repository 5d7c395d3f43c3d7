"""Weights on real cgroups (v1 cpu.shares here) and real nice values: apply, verify, follow,
yield, restore."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from actuator_kit import Job, cpu_cgroup

from autotune.actuators import Actuators, DecisionLog
from autotune.config import Settings
from autotune.system import cgroups
from autotune.target import threads

pytestmark = pytest.mark.root


def _cpu_mount() -> Path:
    mount = cgroups.mounts().v1.get("cpu")
    if mount is None:
        pytest.skip("no cgroup v1 cpu hierarchy on this node")
    return mount


def _shares(directory: Path) -> int:
    return int((directory / "cpu.shares").read_text())


def test_cgroup_weights_apply_follow_and_restore(
    spawn: Callable[..., Job], settings: Settings, tmp_path: Path
) -> None:
    mount = _cpu_mount()
    job = spawn("--loaders", "2")
    origin = cpu_cgroup(job.proc.pid)
    log_path = tmp_path / "decisions.jsonl"
    with Actuators(job.target, settings, log=DecisionLog(log_path, console=False)) as act:
        assert act.backends["weights"].backend == "cgroup1"
        got = act.apply({"weight.trainer": 4.0, "weight.loader": 0.5}, reason="test")
        assert got["weight.trainer"] == 4.0
        assert got["weight.loader"] == 0.5
        session = mount / settings.cgroup_parent / act.session_id
        m = job.target.members()
        assert (
            cpu_cgroup(m.trainer_pids[0]) == f"/{settings.cgroup_parent}/{act.session_id}/trainer"
        )
        assert {cpu_cgroup(p) for p in m.loader_pids} == {
            f"/{settings.cgroup_parent}/{act.session_id}/loader"
        }
        # Per process: 4 × 1024 for the one trainer, 0.5 × 1024 × 2 for the two loaders; the
        # session and the parent weigh what their children add up to.
        assert _shares(session / "trainer") == 4096
        assert _shares(session / "loader") == 1024
        assert _shares(session) == 5120
        assert _shares(mount / settings.cgroup_parent) == 5120
        assert settings.journal.exists()

        new_pid = int(job.send("fork").split()[1])  # born in the trainer's cgroup
        act.follow()
        assert cpu_cgroup(new_pid) == f"/{settings.cgroup_parent}/{act.session_id}/loader"
        assert _shares(session / "loader") == 1536  # three loaders now
        assert act.current()["weight.loader"] == 0.5
        assert not act.disabled.keys() & {"weight.trainer", "weight.loader"}

    assert not (mount / settings.cgroup_parent).exists()
    m = job.target.members()
    assert {cpu_cgroup(p) for p in m.all_pids} == {origin}
    lines = DecisionLog.read(log_path)
    sets = [(d["knob"], d["old"], d["new"]) for d in lines if d["event"] == "set"]
    assert ("weight.trainer", 1.0, 4.0) in sets
    assert ("weight.loader", 1.0, 0.5) in sets
    assert {d["knob"] for d in lines if d["event"] == "restore"} >= {"weight.trainer"}


def test_equal_weights_keep_the_job_in_one_cgroup_and_1x_puts_it_back(
    spawn: Callable[..., Job], settings: Settings
) -> None:
    mount = _cpu_mount()
    job = spawn("--loaders", "2")
    origin = cpu_cgroup(job.proc.pid)
    with Actuators(job.target, settings, log=DecisionLog(console=False)) as act:
        session = mount / settings.cgroup_parent / act.session_id
        rel = f"/{settings.cgroup_parent}/{act.session_id}"
        act.apply({"weight.trainer": 4.0, "weight.loader": 2.0})
        m = job.target.members()
        assert cpu_cgroup(m.trainer_pids[0]) == f"{rel}/trainer"
        assert {cpu_cgroup(p) for p in m.loader_pids} == {f"{rel}/loader"}

        got = act.apply({"weight.trainer": 2.0})  # equal: the job together, not split by role
        assert {cpu_cgroup(p) for p in m.all_pids} == {f"{rel}/job"}
        assert _shares(session / "job") == 2 * 1024 * 3  # 2× for each of its three processes
        assert _shares(session) == 2 * 1024 * 3
        assert got["weight.trainer"] == 2.0
        assert got["weight.loader"] == 2.0

        new_pid = int(job.send("fork").split()[1])
        act.follow()
        assert cpu_cgroup(new_pid) == f"{rel}/job"
        assert _shares(session / "job") == 2 * 1024 * 4

        got = act.apply({"weight.trainer": 1.0, "weight.loader": 1.0})  # default: as found
        m = job.target.members()
        assert {cpu_cgroup(p) for p in m.all_pids} == {origin}
        assert got["weight.trainer"] == 1.0
        assert got["weight.loader"] == 1.0
        act.follow()
        assert not act.disabled.keys() & {"weight.trainer", "weight.loader"}
    assert not (mount / settings.cgroup_parent).exists()
    assert {cpu_cgroup(p) for p in job.target.members().all_pids} == {origin}


def test_loader_knobs_are_inert_until_the_job_has_loader_processes(
    spawn: Callable[..., Job], settings: Settings
) -> None:
    job = spawn("--loaders", "0")
    with Actuators(job.target, settings, log=DecisionLog(console=False)) as act:
        inert = act.inert()
        assert inert["weight.loader"] == inert["cpus.loader"] == "the job has no loader processes"
        assert not inert.keys() & {"weight.trainer", "cpus.trainer"}
        job.send("fork")  # a loader appears
        assert not act.inert().keys() & {"weight.loader", "cpus.loader"}


def test_someone_changing_our_shares_makes_us_yield(
    spawn: Callable[..., Job], settings: Settings
) -> None:
    mount = _cpu_mount()
    job = spawn("--loaders", "1")
    with Actuators(job.target, settings, log=DecisionLog(console=False)) as act:
        act.apply({"weight.trainer": 2.0})
        trainer_dir = mount / settings.cgroup_parent / act.session_id / "trainer"
        (trainer_dir / "cpu.shares").write_text("3000")  # a person, behind our back
        act.follow()
        assert "behind our back" in act.disabled["weight.trainer"]
        act.apply({"weight.trainer": 8.0})
        assert _shares(trainer_dir) == 3000  # no longer touched
        act.apply({"weight.loader": 2.0})  # the other role still is
        assert act.current()["weight.loader"] == 2.0


def test_nice_weights_forced(spawn: Callable[..., Job], settings: Settings) -> None:
    job = spawn("--loaders", "2")
    m = job.target.members()
    # One loader thread starts at nice 1 (someone's choice before we came): it must get it back.
    odd = threads(m.loader_pids[0])[-1]
    os.setpriority(os.PRIO_PROCESS, odd, 1)
    with Actuators(
        job.target, settings, weights_backend="nice", log=DecisionLog(console=False)
    ) as act:
        assert act.backends["weights"].backend == "nice"
        got = act.apply({"weight.trainer": 4.0, "weight.loader": 0.25})
        assert got["weight.trainer"] == 4.0
        assert got["weight.loader"] == 0.25
        assert {os.getpriority(os.PRIO_PROCESS, t) for t in m.trainer_tids} == {-6}
        assert {os.getpriority(os.PRIO_PROCESS, t) for t in m.loader_tids} == {6}
        assert not (
            cgroups.mounts().v1.get("cpu", Path("/nonexistent")) / settings.cgroup_parent
        ).exists()
        job.send("threads 2")  # inherit -6 from the trainer's main thread: still ours
        act.follow()
        assert not act.disabled.keys() & {"weight.trainer", "weight.loader"}
    after = job.target.members()
    assert {os.getpriority(os.PRIO_PROCESS, t) for t in after.trainer_tids} == {0}
    assert os.getpriority(os.PRIO_PROCESS, odd) == 1
    assert {os.getpriority(os.PRIO_PROCESS, t) for t in after.loader_tids if t != odd} == {0}


def test_a_loader_forked_from_the_reniced_trainer_gets_its_nice_value_back(
    spawn: Callable[..., Job], settings: Settings
) -> None:
    """Only the trainer's weight is set: a loader it forks inherits its nice value, and the
    follow gives the loader the machine's back (the loaders' weight was never asked for)."""
    job = spawn("--loaders", "1")
    with Actuators(
        job.target, settings, weights_backend="nice", log=DecisionLog(console=False)
    ) as act:
        act.apply({"weight.trainer": 4.0})
        job.send("fork")  # born at the trainer's -6
        newest = max(job.target.members().loader_pids)
        assert {os.getpriority(os.PRIO_PROCESS, t) for t in threads(newest)} == {-6}
        act.follow()
        m = job.target.members()
        assert {os.getpriority(os.PRIO_PROCESS, t) for t in m.trainer_tids} == {-6}
        assert {os.getpriority(os.PRIO_PROCESS, t) for t in m.loader_tids} == {0}
        assert "weight.loader" not in act.disabled
    assert {os.getpriority(os.PRIO_PROCESS, t) for t in job.target.members().trainer_tids} == {0}


def test_a_reniced_thread_is_left_to_the_person(
    spawn: Callable[..., Job], settings: Settings
) -> None:
    job = spawn("--loaders", "1")
    m = job.target.members()
    with Actuators(
        job.target, settings, weights_backend="nice", log=DecisionLog(console=False)
    ) as act:
        act.apply({"weight.trainer": 2.0})
        os.setpriority(os.PRIO_PROCESS, m.trainer_tids[-1], 5)
        act.follow()
        assert "behind our back" in act.disabled["weight.trainer"]
    assert os.getpriority(os.PRIO_PROCESS, m.trainer_tids[-1]) == 5  # theirs, kept
    assert os.getpriority(os.PRIO_PROCESS, m.trainer_tids[0]) == 0  # ours, restored


def test_a_role_gone_between_the_snapshot_and_the_read_back_is_not_reported_at_its_old_weight(
    spawn: Callable[..., Job], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race CI met as a job exited: the interval's snapshot still names a loader that is gone
    by the time the write is read back. The reading must leave the knob out, not keep the value
    from before the write (that was the other spell's setting)."""
    _cpu_mount()
    job = spawn("--loaders", "1")
    with Actuators(job.target, settings, log=DecisionLog(console=False)) as act:
        assert act.apply({"weight.trainer": 4.0, "weight.loader": 2.0})["weight.loader"] == 2.0
        gone = _reaped_pid()
        snapshot = dataclasses.replace(job.target.members(), loader_pids=(gone,), loader_tids=())
        monkeypatch.setattr(job.target, "members", lambda: snapshot)
        got = act.apply({"weight.loader": 0.5})
        assert "weight.loader" not in got
        assert got["weight.trainer"] == 4.0  # read back, and still what it was
        monkeypatch.undo()
        assert act.current()["weight.trainer"] == 4.0


def _reaped_pid() -> int:
    """The PID of a process that has exited and been reaped."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
