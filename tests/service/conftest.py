"""Fixtures for the node service: a real cgroup v1 slice, jobs started inside it, the service
run as a real process with its own journal, state directory and cgroup parent."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from policy_kit import FAST_GUARD, write_constant_policy
from service_helpers import Jobs, Service, cpu_root, remove_tree

_counter = itertools.count()


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    """Asks for both roles at 2x weight: the job goes into the tuner's own cgroup, which the
    tests can see, and comes back on restore."""
    return write_constant_policy(tmp_path / "pol", {"weight.trainer": 2.0, "weight.loader": 2.0})


@pytest.fixture
def env(tmp_path: Path, short_tmpdir: str) -> dict[str, str]:
    """The service's environment: journal, state, runs, cgroup parent and temporary folder are
    this test's own; short guard windows so a test sees a change within seconds."""
    return {
        **os.environ,
        "TMPDIR": short_tmpdir,
        "AUTOTUNE_JOURNAL": str(tmp_path / "journal.json"),
        "AUTOTUNE_STATE_DIR": str(tmp_path / "state"),
        "AUTOTUNE_RUNS_DIR": str(tmp_path / "runs"),
        "AUTOTUNE_TRACKING_URI": f"sqlite:///{tmp_path}/runs/mlflow.db",
        "AUTOTUNE_CGROUP_PARENT": f"autotune-svc-test-{os.getpid()}",
        **FAST_GUARD,
    }


@pytest.fixture
def slice_dir(env: dict[str, str]) -> Iterator[Path]:
    """A real cgroup v1 ``cpu`` slice; removed (with the test's cgroup parent) afterwards."""
    root = cpu_root()
    group = root / f"autotune-svc-slice-{os.getpid()}-{next(_counter)}"
    group.mkdir()
    yield group
    remove_tree(group)
    remove_tree(root / env["AUTOTUNE_CGROUP_PARENT"])


@pytest.fixture
def jobs() -> Iterator[Jobs]:
    j = Jobs()
    yield j
    j.close()


@pytest.fixture
def service(env: dict[str, str], slice_dir: Path, tmp_path: Path) -> Iterator[Service]:
    s = Service(env, tmp_path)
    yield s
    s.close()
