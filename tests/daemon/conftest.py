"""Fixtures for the online tuner: constant policies, a CPU-burning job, an isolated journal."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from autotune import policy as runtime
from autotune.features import FEATURE_NAMES, SCHEMA_VERSION
from autotune.knobs import KNOB_TABLE_VERSION, KNOBS, default_values

HERE = Path(__file__).resolve().parent


def write_constant_policy(folder: Path, values: dict[str, float]) -> Path:
    """A real exported policy whose network always picks ``values`` (others at default).

    One linear layer with zero weights and a bias that is one-hot per knob: a legitimate
    policy file, handy to force what the tuner is asked to do.
    """
    wanted = default_values()
    wanted.update(values)
    bias = np.concatenate(
        [np.eye(k.levels, dtype=np.float32)[k.index(wanted[k.name])] for k in KNOBS]
    )
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(
        folder / runtime.WEIGHTS_FILE,
        **{"c/w": np.zeros((len(bias), len(FEATURE_NAMES)), np.float32), "c/b": bias},
    )
    meta = {
        "format": runtime.FORMAT,
        "format_version": runtime.FORMAT_VERSION,
        "algo": "constant",
        "action": "multidiscrete",
        "schema_version": SCHEMA_VERSION,
        "feature_names": list(FEATURE_NAMES),
        "knob_table_version": KNOB_TABLE_VERSION,
        "knobs": runtime.knob_signature(),
        "frame_stack": 1,
        "ops": [["linear", "c"], ["argmax_split"]],
    }
    (folder / runtime.META_FILE).write_text(json.dumps(meta))
    return folder


@pytest.fixture
def constant_policy(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str = "pol", **values: float) -> Path:
        return write_constant_policy(
            tmp_path / name, {k.replace("_", "."): v for k, v in values.items()}
        )

    return make


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """An environment whose journal, runs folder and MLflow store are the test's own.

    The guard's quiet-node rule for weights is off (a CI node is quiet: the constant policies'
    weights would be refused if the job read); test_tune's quiet-node test turns it back on."""
    env = {
        **os.environ,
        "AUTOTUNE_GUARD_MIN_CONTENTION": "0",
        "AUTOTUNE_JOURNAL": str(tmp_path / "journal.json"),
        "AUTOTUNE_RUNS_DIR": str(tmp_path / "runs"),
        "AUTOTUNE_TRACKING_URI": f"sqlite:///{tmp_path}/runs/mlflow.db",
        "AUTOTUNE_CGROUP_PARENT": f"autotune-test-{os.getpid()}",
    }
    yield env


BURN = HERE / "burn.py"
