"""The exhaustive replay: the vectorized model equals the scalar one, and the oracle's figures
are what the env gives for the same settings."""

from __future__ import annotations

import numpy as np
import pytest
from workload_kit import workload

from autotune.agents.baselines import Default, Static
from autotune.agents.evaluate import episode_rows, run_episode
from autotune.envs import splits
from autotune.envs.model import Knobs, respond, respond_rates
from autotune.envs.oracle import headroom, rates, settings
from autotune.envs.spaces import levels_to_values
from autotune.envs.workload import list_bundled, load

BUNDLED = list_bundled()
pytestmark = pytest.mark.skipif(not BUNDLED, reason="no bundled workloads")


@pytest.mark.parametrize("name", BUNDLED)
def test_vectorized_model_equals_the_scalar_model(name: str) -> None:
    wl = workload(name)
    levels, grid = settings()
    rng = np.random.default_rng(0)
    demands = wl.demands_cached()
    for i in rng.integers(0, len(wl), 8):
        vector = respond_rates(demands[i], grid, wl.params, wl.ncpus)
        assert np.allclose(rates(wl, int(i)), vector, rtol=1e-12, atol=0)
        for j in rng.integers(0, len(levels), 40):
            knobs = Knobs.from_values(levels_to_values(levels[j]))
            scalar = respond(demands[i], knobs, wl.params, wl.ncpus).rate
            assert vector[j] == pytest.approx(scalar, rel=1e-12, abs=1e-12)


def test_best_fixed_is_what_the_env_gives_that_setting() -> None:
    wl = load(BUNDLED[0])
    h = headroom(wl, episode_rows(wl, splits.TEST))
    assert h.per_row_oracle >= h.best_fixed >= 1.0 - 1e-9  # default is one of the settings
    # The env with its noise off, the same rows: the same figure.
    noiseless = wl.calibration.get("residual_sd")
    try:
        wl.calibration["residual_sd"] = 0.0
        got = run_episode(Static(h.best_levels), wl, 1, "best").progress_vs_default
        default = run_episode(Default(), wl, 1, "default").progress_vs_default
    finally:
        wl.calibration["residual_sd"] = noiseless
    assert default == pytest.approx(1.0)
    assert got == pytest.approx(h.best_fixed, rel=1e-9)
