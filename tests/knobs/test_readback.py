"""read_knobs on a real process: nice, affinity and open files read back, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from autotune.knobs import by_name
from autotune.knobs.readback import (
    _v2_weight_holder,
    cpu_pool,
    nice_factor,
    nice_for_factor,
    open_devices,
    read_knobs,
    readahead_kb,
    role_weight,
)
from autotune.system import blockdev, cgroups
from autotune.target import Target, exiting

JOB = textwrap.dedent(
    """
    import os, sys, time
    f = open(sys.argv[1], "rb")
    if os.fork() == 0:
        time.sleep(30); os._exit(0)
    print("ready", flush=True)
    time.sleep(30)
    """
)


@dataclass
class Ack:
    prefetch_ack: int | None


@pytest.fixture
def job(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    data = tmp_path / "data.bin"
    data.write_bytes(b"x" * 4096)
    proc = subprocess.Popen(
        [sys.executable, "-c", JOB, str(data)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        for pid in Target.from_pid(proc.pid).members().loader_pids:
            os.kill(pid, 9)
        proc.kill()
        proc.wait()


def test_nice_ladder_round_trips() -> None:
    weights = by_name("weight.trainer")
    for factor in weights.ladder:
        assert weights.value(weights.index(nice_factor(nice_for_factor(factor)))) == factor


def test_reads_nice_affinity_and_device_of_a_real_job(
    job: subprocess.Popen[str], tmp_path: Path
) -> None:
    target = Target.from_pid(job.pid)
    before = read_knobs(target)
    assert before["weight.trainer"] == 1.0
    assert before["cpus.trainer"] == 1.0

    loader = target.members().loader_pids[0]
    os.setpriority(os.PRIO_PROCESS, loader, 10)  # raising nice needs no privilege
    pool = cpu_pool(job.pid)
    os.sched_setaffinity(job.pid, {pool[0]})
    after = read_knobs(target, prefetch=Ack(4))

    assert after["weight.loader"] == 0.25  # nice 10 is ~0.11× of nice 0, the lowest rung
    assert after["weight.trainer"] == 1.0
    cpus = by_name("cpus.trainer")
    assert after["cpus.trainer"] == cpus.value(cpus.index(1 / len(pool)))
    assert after["prefetch.loader"] == 4.0
    disk = blockdev.disk_of_path(tmp_path)
    if disk is not None:  # tmp on a real disk: the job's open file names it
        assert open_devices([job.pid]) == [disk]
        assert after["readahead"] == readahead_kb(disk)


def test_unknowable_knobs_are_left_out(job: subprocess.Popen[str]) -> None:
    target = Target.from_pid(job.pid)
    assert "prefetch.loader" not in read_knobs(target, prefetch=Ack(None))
    assert "readahead" not in read_knobs(target, devices=["no-such-disk"])


@pytest.mark.root
def test_a_zombie_worker_is_not_read_as_the_roles_weight(job: subprocess.Popen[str]) -> None:
    # cgroup v1 shows an exited, unreaped worker in the root cgroup: its weight reads as 1×.
    mounts = cgroups.mounts()
    if "cpu" not in mounts.v1:
        pytest.skip("needs the cgroup v1 cpu controller (this node's kind)")
    target = Target.from_pid(job.pid)
    worker = target.members().loader_pids[0]
    group = mounts.v1["cpu"] / f"autotune-test-readback-{os.getpid()}"
    group.mkdir()
    try:
        (group / "cpu.shares").write_text("4096")
        (group / "cgroup.procs").write_text(str(worker))
        assert not exiting(worker)
        assert role_weight([worker], mounts) == 4.0
        os.kill(worker, 9)  # the job never waits for it: it stays a zombie
        while not exiting(worker):
            pass
        assert worker in target.members().loader_pids
        assert role_weight([worker], mounts) is None
        assert role_weight([worker, job.pid], mounts) == 1.0  # the next running one
        assert "weight.loader" not in read_knobs(target)
    finally:
        group.rmdir()


def test_a_v2_cgroup_without_cpu_weight_competes_as_its_nearest_weighted_ancestor(
    tmp_path: Path,
) -> None:
    # A tree shaped as cgroup v2 makes one (cpu.weight only where the parent passes the cpu
    # controller down). The real controller is read in the VM: tests/actuators/test_cgroup2_vm.py.
    leaf = tmp_path / "a.slice" / "b.slice" / "c.scope"
    leaf.mkdir(parents=True)
    assert _v2_weight_holder(tmp_path, leaf) is None  # the root's: 1×
    (tmp_path / "a.slice" / "cpu.weight").write_text("200\n")
    assert _v2_weight_holder(tmp_path, leaf) == tmp_path / "a.slice"
    (tmp_path / "a.slice" / "b.slice" / "cpu.weight").write_text("50\n")
    assert _v2_weight_holder(tmp_path, leaf) == tmp_path / "a.slice" / "b.slice"
