"""Fixtures for the online tuner: constant policies, a CPU-burning job, an isolated journal."""

from __future__ import annotations

import os
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


BURN = HERE / "burn.py"
