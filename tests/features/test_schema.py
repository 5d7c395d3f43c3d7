"""The observation schema: fixed length, bounded, named, independent of the core count."""

from __future__ import annotations

import numpy as np
import pytest

from autotune.features import FEATURE_NAMES, N_FEATURES, featurize, hist_quantile
from autotune.features.schema import p50_p99
from autotune.roles import ROLE_INDEX, Role
from autotune.telemetry.sample import N_SLOTS, PROGRESS_CLIENT, C, Sample


def _sample(ncpus: int, interval_s: float = 0.25) -> Sample:
    s = Sample(t=1.0, t_wall=1.0, interval_s=interval_s, ncpus=ncpus)
    t = ROLE_INDEX[Role.TRAINER]
    # The trainer uses half of every CPU and waits a quarter of its runnable time.
    s.roles[t, C["oncpu_ns"]] = int(0.5 * interval_s * 1e9 * ncpus)
    s.roles[t, C["runq_wait_ns"]] = int(0.5 * interval_s * 1e9 * ncpus / 3)
    s.runq_hist[t, 4] = 90
    s.runq_hist[t, 12] = 10
    s.progress_samples = 1000 * interval_s
    s.progress_source = PROGRESS_CLIENT
    return s


def test_length_names_and_bounds() -> None:
    obs = featurize(_sample(2))
    assert obs.shape == (N_FEATURES,)
    assert obs.dtype == np.float32
    assert len(set(FEATURE_NAMES)) == N_FEATURES
    assert np.all((obs >= 0) & (obs <= 1))


def test_independent_of_core_count() -> None:
    np.testing.assert_allclose(featurize(_sample(2)), featurize(_sample(64)), atol=1e-6)


def test_values() -> None:
    f = dict(zip(FEATURE_NAMES, featurize(_sample(4)), strict=True))
    assert abs(f["trainer_cpu"] - 0.5) < 1e-6
    assert abs(f["trainer_wait"] - 0.25) < 1e-3
    assert f["trainer_runq_p50"] * N_SLOTS == pytest.approx(4 + (0.5 * 100) / 90, rel=1e-5)
    assert 12 / N_SLOTS <= f["trainer_runq_p99"] <= 13 / N_SLOTS
    assert f["progress_client"] == 1.0
    assert f["gpu_present"] == 0.0
    assert f["loader_cpu"] == 0.0


def test_fast_and_vector_quantiles_agree() -> None:
    rng = np.random.default_rng(0)
    hists = rng.integers(0, 50, size=(20, N_SLOTS))
    hists[::3, : N_SLOTS // 2] = 0
    vec = hist_quantile(hists, [0.5, 0.99])
    for h, row in zip(hists, vec, strict=True):
        np.testing.assert_allclose(p50_p99(h.tolist()), row)
    assert p50_p99([0] * N_SLOTS) == (0.0, 0.0)
