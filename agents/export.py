"""Export a trained stable-baselines3 model as a deployable policy (see :mod:`autotune.policy`).

Only the acting part of the network is exported (no critic), as arrays and a list of
operations; the online tuner runs it with numpy alone.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from autotune import policy as runtime
from autotune.features import FEATURE_NAMES, SCHEMA_VERSION
from autotune.knobs import KNOB_TABLE_VERSION


def _sequential(module: nn.Module, prefix: str, weights: dict[str, np.ndarray]) -> list[list[Any]]:
    ops: list[list[Any]] = []
    for name, layer in module.named_children():
        key = f"{prefix}.{name}"
        if isinstance(layer, nn.Linear):
            weights[f"{key}/w"] = layer.weight.detach().cpu().numpy().astype(np.float32)
            weights[f"{key}/b"] = layer.bias.detach().cpu().numpy().astype(np.float32)
            ops.append(["linear", key])
        elif isinstance(layer, nn.Tanh):
            ops.append(["tanh"])
        elif isinstance(layer, nn.ReLU):
            ops.append(["relu"])
        elif isinstance(layer, nn.Sequential):
            ops += _sequential(layer, key, weights)
        else:
            raise ValueError(f"cannot export layer {type(layer).__name__} ({key})")
    return ops


def _linear(layer: nn.Module, key: str, weights: dict[str, np.ndarray]) -> list[list[Any]]:
    holder = nn.Sequential()
    holder.add_module("0", layer)
    return [["linear", f"{key}.0"]] if _sequential(holder, key, weights) else []


_LSTM_NAMES = {
    "weight_ih_l0": "w_ih",
    "weight_hh_l0": "w_hh",
    "bias_ih_l0": "b_ih",
    "bias_hh_l0": "b_hh",
}


def network_ops(model: Any) -> tuple[list[list[Any]], dict[str, np.ndarray], str]:
    """The acting network of an SB3 model as (operations, weights, action kind)."""
    from stable_baselines3 import DQN, SAC

    weights: dict[str, np.ndarray] = {}
    policy = model.policy
    if isinstance(model, DQN):
        ops = _sequential(policy.q_net.q_net, "q", weights)
        return [*ops, ["argmax"]], weights, "discrete-step"
    if isinstance(model, SAC):
        ops = _sequential(policy.actor.latent_pi, "pi", weights)
        ops += _linear(policy.actor.mu, "mu", weights)
        return [*ops, ["box_levels"]], weights, "box-levels"
    ops = []
    lstm = getattr(policy, "lstm_actor", None)
    if lstm is not None:
        if lstm.num_layers != 1:
            raise ValueError("only one-layer LSTM policies can be exported")
        for name, short in _LSTM_NAMES.items():
            weights[f"lstm/{short}"] = getattr(lstm, name).detach().cpu().numpy().astype(np.float32)
        ops.append(["lstm", "lstm"])
    ops += _sequential(policy.mlp_extractor.policy_net, "pi", weights)
    ops += _linear(policy.action_net, "action", weights)
    return [*ops, ["argmax_split"]], weights, "multidiscrete"


def export(
    model: Any,
    folder: str | os.PathLike[str],
    *,
    algo: str,
    frame_stack: int = 1,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``policy.json`` and ``weights.npz`` for ``model`` into ``folder`` (atomically).

    The written policy is loaded back and checked to act as the SB3 model does on a few random
    observations before the folder is put in place.
    """
    ops, weights, kind = network_ops(model)
    meta = {
        "format": runtime.FORMAT,
        "format_version": runtime.FORMAT_VERSION,
        "algo": algo,
        "action": kind,
        "schema_version": SCHEMA_VERSION,
        "feature_names": list(FEATURE_NAMES),
        "knob_table_version": KNOB_TABLE_VERSION,
        "knobs": runtime.knob_signature(),
        "frame_stack": frame_stack,
        "normalization": {"kind": "none", "why": "the schema scales every field to [0, 1]"},
        "ops": ops,
        **(extra or {}),
    }
    dest = Path(folder)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        (tmp / runtime.META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
        np.savez(tmp / runtime.WEIGHTS_FILE, **weights)  # type: ignore[arg-type]
        _check_same_actions(model, runtime.load(tmp), kind)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _check_same_actions(model: Any, pol: runtime.Policy, kind: str) -> None:
    """The exported policy must choose what the SB3 model chooses (deterministic actions)."""
    if pol.frame_stack != 1 or pol.meta["ops"][0][0] == "lstm":
        return  # stateful inputs: checked in the tests over whole episodes instead
    rng = np.random.default_rng(0)
    n = len(FEATURE_NAMES)
    current = np.zeros(len(runtime.LEVELS), dtype=np.int64)
    for _ in range(8):
        obs = rng.random(n).astype(np.float32)
        ours = pol.decide(obs, current)
        theirs, _ = model.predict(obs, deterministic=True)
        if kind == "discrete-step":
            theirs = runtime._step(current, int(theirs))
        elif kind == "box-levels":
            a = np.clip(np.asarray(theirs, dtype=np.float64), -1.0, 1.0)
            theirs = np.rint((a + 1.0) / 2.0 * (runtime.LEVELS - 1)).astype(np.int64)
        if not np.array_equal(np.asarray(theirs).reshape(-1), ours):
            raise RuntimeError(f"exported policy disagrees with the model: {ours} vs {theirs}")
