"""Baselines behind the same predict(obs) interface as a trained policy."""

from __future__ import annotations

import numpy as np
import pytest
from autotune.agents import baselines as bl
from autotune.agents.evaluate import run_episode
from autotune.envs.spaces import values_to_levels
from autotune.envs.workload import list_bundled, load

from autotune.errors import UserError
from autotune.features import FEATURE_NAMES, knob_levels
from autotune.knobs import KNOBS, default_values
from autotune.telemetry.sample import Sample

F = {n: i for i, n in enumerate(FEATURE_NAMES)}
DEFAULTS = default_values()


def _obs(**fields: float) -> np.ndarray:
    from autotune.features import featurize

    obs = featurize(Sample(t=0, t_wall=0, interval_s=0.25, ncpus=2, knobs=DEFAULTS))
    for name, v in fields.items():
        obs[F[name]] = v
    return obs


def test_default_never_changes_anything() -> None:
    obs = _obs(trainer_wait=0.9)
    action, _ = bl.Default().predict(obs)
    assert np.array_equal(action, knob_levels(obs))


def test_heuristic_raises_weights_when_the_job_waits_and_lowers_them_back() -> None:
    h = bl.Heuristic(dwell=1)
    waiting = _obs(trainer_wait=0.5)
    action, _ = h.predict(waiting)
    i = [k.name for k in KNOBS].index("weight.trainer")
    assert action[i] == knob_levels(waiting)[i] + 1
    relaxed = _obs(trainer_wait=0.0)
    relaxed[F["knob_weight_trainer"]] = 4 / 5  # at 4x
    action, _ = h.predict(relaxed)
    assert action[i] == 3


def test_heuristic_readahead_follows_the_access_pattern() -> None:
    h = bl.Heuristic(dwell=1)
    i = [k.name for k in KNOBS].index("readahead")
    seq = _obs(blk_read_mbps=0.5, trainer_ra_sync=0.1)
    assert h.predict(seq)[0][i] == knob_levels(seq)[i] + 1
    rnd = _obs(blk_read_mbps=0.5, trainer_ra_sync=0.9)
    assert h.predict(rnd)[0][i] == knob_levels(rnd)[i] - 1


def test_random_is_reproducible() -> None:
    obs = _obs()
    a = [bl.Random(seed=1).predict(obs)[0].tolist() for _ in range(1)]
    r1, r2 = bl.Random(seed=1), bl.Random(seed=1)
    assert [r1.predict(obs)[0].tolist() for _ in range(30)] == [
        r2.predict(obs)[0].tolist() for _ in range(30)
    ]
    assert a


def test_unknown_baseline() -> None:
    with pytest.raises(UserError, match="unknown baseline 'best'"):
        bl.make("best")


@pytest.mark.skipif(not list_bundled(), reason="no bundled workloads")
def test_static_best_is_at_least_default_on_its_workload() -> None:
    wl = load(list_bundled()[0])
    best = bl.search_static_best(wl, trials=25, steps=60)
    r_best = run_episode(best, wl, 0, "static-best")
    r_default = run_episode(bl.Default(), wl, 0, "default")
    assert r_best.progress_vs_default >= r_default.progress_vs_default - 0.02
    assert len(best.levels) == len(KNOBS)
    assert values_to_levels(wl.defaults).shape == best.levels.shape
