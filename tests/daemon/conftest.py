"""Fixtures for the online tuner: constant policies, a CPU-burning job, an isolated journal."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from policy_kit import write_constant_policy

HERE = Path(__file__).resolve().parent


@pytest.fixture
def constant_policy(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str = "pol", **values: float) -> Path:
        return write_constant_policy(
            tmp_path / name, {k.replace("_", "."): v for k, v in values.items()}
        )

    return make


@pytest.fixture
def isolated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, short_tmpdir: str
) -> Iterator[dict[str, str]]:
    """An environment whose journal, runs folder and MLflow store are the test's own.

    The guard's quiet-node rule for weights is off (a CI node is quiet: the constant policies'
    weights would be refused if the job read); test_tune's quiet-node test turns it back on.
    Its TMPDIR is the test's own (``short_tmpdir``): a tuner killed with SIGKILL leaves its
    folders there."""
    env = {
        **os.environ,
        "TMPDIR": short_tmpdir,
        "AUTOTUNE_GUARD_MIN_CONTENTION": "0",
        "AUTOTUNE_JOURNAL": str(tmp_path / "journal.json"),
        "AUTOTUNE_RUNS_DIR": str(tmp_path / "runs"),
        "AUTOTUNE_TRACKING_URI": f"sqlite:///{tmp_path}/runs/mlflow.db",
        "AUTOTUNE_CGROUP_PARENT": f"autotune-test-{os.getpid()}",
    }
    yield env
    _leave_clean(env)


def _leave_clean(env: dict[str, str]) -> None:
    """After the test's own assertions: what a tuner it had to kill left behind is restored
    through the journal (``autotune restore``), and the cgroups under the test's parent, which
    every test of the session shares, are removed, so one failure fails no other test and
    leaves nothing on the machine."""
    if Path(env["AUTOTUNE_JOURNAL"]).exists():
        restore = [sys.executable, "-m", "autotune.cli.main", "restore"]
        subprocess.run(restore, env=env, capture_output=True, timeout=120, check=False)
    for mount in Path("/sys/fs/cgroup").iterdir():
        top = mount / env["AUTOTUNE_CGROUP_PARENT"]
        if not top.is_dir():
            continue
        tree = [top, *(p for p in top.rglob("*") if p.is_dir())]
        for d in sorted(tree, key=lambda p: len(p.parts), reverse=True):
            for pid in (d / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):  # it exited meanwhile
                    (mount / "cgroup.procs").write_text(pid)
            d.rmdir()


BURN = HERE / "burn.py"
