"""The reasons in the decision log: the telemetry that moved the policy, in a few words."""

from __future__ import annotations

import numpy as np

from autotune.daemon.explain import explain
from autotune.features import FEATURE_NAMES, N_FEATURES


def _obs(**fields: float) -> np.ndarray:
    obs = np.zeros(N_FEATURES, dtype=np.float32)
    for name, value in fields.items():
        obs[FEATURE_NAMES.index(name)] = value
    return obs


def test_a_starved_neighbour_shows_what_it_wants_not_only_what_it_gets() -> None:
    # Beside a job at 8x a CPU-bound neighbour gets 7 % of the CPUs and waits for the rest.
    obs = _obs(trainer_wait=0.05, loader_wait=0.4, other_cpu=0.07, other_demand=0.95 / 4)
    why = explain("weight.loader", obs)
    assert why == (
        "run-queue wait trainer 5%, loader 40%; other tasks use 7% of the CPUs and want 95%"
    )


def test_read_ahead_and_prefetch_quote_their_own_telemetry() -> None:
    obs = _obs(blk_read_mbps=float(np.log1p(100) / np.log1p(1e4)), loader_ra_sync=0.25)
    assert explain("readahead", obs) == "reading 100 MB/s, 25% of readahead synchronous"
    assert explain("prefetch.loader", _obs(loader_wait=0.5)) == (
        "loader run-queue wait 50%, trainer 0%"
    )
