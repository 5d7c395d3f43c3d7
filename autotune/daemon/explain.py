"""One short reason per decision, from the observation the policy acted on.

The policy is a network; what a person needs is the telemetry that moved it. For each knob family
the fields that matter to it are quoted (run-queue waits for weights and CPUs, the sync share of
readahead and the read rate for read-ahead, the loaders' wait for prefetch).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from autotune.features import FEATURE_NAMES
from autotune.features.schema import DEMAND_CLIP
from autotune.knobs import by_name

_F = {n: i for i, n in enumerate(FEATURE_NAMES)}


def _pct(obs: npt.NDArray[np.float32], name: str) -> str:
    return f"{float(obs[_F[name]]):.0%}"


def explain(knob: str, obs: npt.NDArray[np.float32]) -> str:
    """Why the policy may have moved ``knob``: the telemetry it saw, in a few words."""
    family = by_name(knob).family
    if family in ("weights", "affinity"):
        # Demand (on-CPU and waiting) as well as use: beside a heavier job a CPU-bound
        # neighbour uses a few per cent of the CPUs while it wants all of them.
        want = float(obs[_F["other_demand"]]) * DEMAND_CLIP
        return (
            f"run-queue wait trainer {_pct(obs, 'trainer_wait')}, "
            f"loader {_pct(obs, 'loader_wait')}; other tasks use {_pct(obs, 'other_cpu')} "
            f"of the CPUs and want {want:.0%}"
        )
    if knob == "readahead":
        mbps = float(np.expm1(obs[_F["blk_read_mbps"]] * np.log1p(1e4)))
        sync = max(float(obs[_F["trainer_ra_sync"]]), float(obs[_F["loader_ra_sync"]]))
        return f"reading {mbps:.0f} MB/s, {sync:.0%} of readahead synchronous"
    return f"loader run-queue wait {_pct(obs, 'loader_wait')}, trainer {_pct(obs, 'trainer_wait')}"
