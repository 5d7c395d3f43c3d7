"""Fixtures for the workloads: tiny data, and a check that a run leaves nothing behind."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from autotune.system import blockdev, cgroups
from autotune.target import descendants
from workloads import disk, make_data


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every dataset at the tiny size, on whatever disk tmp is (jobs only read it)."""
    root = tmp_path_factory.mktemp("workload-data")
    make_data.make(root, "tiny")
    return root


def _disks() -> dict[str, int]:
    # Loop devices come and go with others' tests; the real disks must never change.
    return {
        d.name: d.read_ahead_kb
        for d in blockdev.devices(include_empty=True)
        if not d.name.startswith("loop")
    }


@pytest.fixture
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Our own cgroup parent and journal for the harness's actuators; yields the journal."""
    parent = f"autotune-wl-test-{os.getpid()}"
    journal = tmp_path / "journal.json"
    monkeypatch.setenv("AUTOTUNE_CGROUP_PARENT", parent)
    monkeypatch.setenv("AUTOTUNE_JOURNAL", str(journal))
    yield journal
    cpu = cgroups.mounts().v1.get("cpu")
    left = cpu is not None and (cpu / parent).exists()
    if cpu is not None and left:
        for d in sorted((cpu / parent).rglob("*"), reverse=True):  # clean up, then fail
            if d.is_dir():
                d.rmdir()
        (cpu / parent).rmdir()
    assert not left, "the harness's actuators left a cgroup behind"
    assert not journal.exists(), "the harness's actuators left their journal behind"


@pytest.fixture
def nothing_left() -> Iterator[None]:
    """Fail a test that leaves a loop device, mount, backing file, process or changed disk."""
    before_disks = _disks()
    before = set(disk.leftovers())
    yield
    assert set(disk.leftovers()) - before == set(), "a data disk was left behind"
    assert _disks() == before_disks, "a disk's read_ahead_kb was left changed"
    assert descendants(os.getpid()) == [], "a process (job or neighbour) was left running"
