"""A real exported policy that always asks for the same knobs: the tests of the tuner, the job
session and the service force what is asked with it. ``tests/`` is on ``sys.path`` (its
conftest.py), so any test folder imports this as ``policy_kit``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from autotune import policy as runtime
from autotune.features import FEATURE_NAMES, SCHEMA_VERSION
from autotune.knobs import KNOB_TABLE_VERSION, KNOBS, default_values


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
