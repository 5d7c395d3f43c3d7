"""Read-only probes of the node against what the kernel says through other interfaces."""

from __future__ import annotations

import os
from pathlib import Path

from autotune.system import blockdev, cgroups, kernel, topology


def test_cpulist_round_trip() -> None:
    assert topology.parse_cpulist("0-3,8,10-11") == [0, 1, 2, 3, 8, 10, 11]
    assert topology.format_cpulist([11, 10, 8, 3, 2, 1, 0]) == "0-3,8,10-11"
    assert topology.format_cpulist([5]) == "5"


def test_topology_matches_kernel() -> None:
    t = topology.read()
    assert len(t.cpus) == os.cpu_count()
    assert sorted(c for core in t.cores for c in core) == sorted(t.cpus)


def test_cgroup_mounts_match_proc_mounts() -> None:
    m = cgroups.mounts()
    text = Path("/proc/mounts").read_text()
    for ctrl, mnt in m.v1.items():
        assert f" {mnt} cgroup " in text
        assert ctrl in mnt.name or ctrl in text
    assert cgroups.cgroup_of(os.getpid(), "") is not None


def test_block_devices_read_ahead_matches_sysfs() -> None:
    for d in blockdev.devices():
        assert d.read_ahead_kb == int(d.read_ahead_path.read_text())
        major, minor = (int(x) for x in d.devno.split(":"))
        assert blockdev.disk_of_devno(major, minor) == d.name


def test_headers_and_sched_ext_report_something() -> None:
    assert kernel.headers().mode in {"exact", "fallback", "missing"}
    s = kernel.sched_ext()
    assert s.supported or s.reason
