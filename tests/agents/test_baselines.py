"""Baselines behind the same predict(obs) interface as a trained policy."""

from __future__ import annotations

import numpy as np
import pytest
from workload_kit import workload

from autotune.agents import baselines as bl
from autotune.agents.evaluate import run_episode
from autotune.envs import splits
from autotune.envs.spaces import values_to_levels
from autotune.envs.workload import list_bundled
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


def _held(h: bl.Heuristic, obs: np.ndarray, times: int) -> np.ndarray:
    action = knob_levels(obs)
    for _ in range(times):
        action, _ = h.predict(obs)
    return action


def test_heuristic_weights_follow_what_other_tasks_want() -> None:
    h = bl.Heuristic(dwell=2)
    i = [k.name for k in KNOBS].index("weight.trainer")
    contended = _obs(other_demand=0.6 / 4)  # others want 0.6 of the node
    assert h.predict(contended)[0][i] == knob_levels(contended)[i]  # not before the dwell
    assert h.predict(contended)[0][i] == KNOBS[i].index(4.0)
    quiet = _obs(other_demand=0.1 / 4)
    quiet[F["knob_weight_trainer"]] = KNOBS[i].index(4.0) / (KNOBS[i].levels - 1)
    assert _held(h, quiet, 2)[i] == KNOBS[i].index(1.0)
    between = _obs(other_demand=0.4 / 4)  # hysteresis: as they are
    assert np.array_equal(_held(h, between, 5), knob_levels(between))


def _mbps(x: float) -> float:
    return float(np.log1p(x) / np.log1p(1e4))


def _per_s(x: float) -> float:
    return float(np.log1p(x) / np.log1p(1e5))


def test_heuristic_sees_mmap_read_around_as_random_access() -> None:
    # randread: 750 MB/s read through page faults, ra_sync 0 (read-around is not counted).
    # Read-ahead comes down at the first such interval, whatever the other knobs' dwell.
    h = bl.Heuristic(dwell=4)
    i = [k.name for k in KNOBS].index("readahead")
    obs = _obs(blk_read_mbps=_mbps(750), trainer_majflt=_per_s(1500), loader_majflt=_per_s(1200))
    assert h.predict(obs)[0][i] == KNOBS[i].index(32.0)


def test_heuristic_streams_get_a_large_readahead_only_after_a_while() -> None:
    h = bl.Heuristic(dwell=1, raise_dwell=5)
    i = [k.name for k in KNOBS].index("readahead")
    seq = _obs(blk_read_mbps=_mbps(1000), trainer_ra_sync=0.01, loader_ra_sync=0.01)
    assert _held(h, seq, 4)[i] == knob_levels(seq)[i]
    assert _held(h, seq, 1)[i] == KNOBS[i].index(4096.0)
    rnd = _obs(blk_read_mbps=_mbps(500), trainer_ra_sync=0.9)
    assert h.predict(rnd)[0][i] == KNOBS[i].index(32.0)
    idle = _obs(blk_read_mbps=0.0, trainer_ra_sync=0.9)  # not reading: nothing to judge
    assert h.predict(idle)[0][i] == knob_levels(idle)[i]


HEURISTIC_MISSES = {
    "cnn": "issue 18: on cnn recorded again (2026-12-05, quiet node) the replay's gain is 8x "
    "weights with nobody else wanting the CPUs (best fixed 1.081), where the heuristic adds "
    "weight only under contention: 0.999 of default; open",
}


@pytest.mark.skipif(not list_bundled(), reason="no bundled workloads")
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=HEURISTIC_MISSES[n]))
        if n in HEURISTIC_MISSES
        else n
        for n in list_bundled()
    ],
)
def test_heuristic_beats_default_where_there_is_headroom(name: str) -> None:
    from autotune.agents.evaluate import episode_rows
    from autotune.envs.oracle import headroom

    wl = workload(name)
    if headroom(wl, episode_rows(wl)).best_fixed < 1.02:
        pytest.skip(f"{name}: under 2 % to gain over default on its test part")
    seeds = splits.eval_seeds(3)
    heur = np.mean([run_episode(bl.Heuristic(), wl, s, "h").progress_vs_default for s in seeds])
    default = np.mean([run_episode(bl.Default(), wl, s, "d").progress_vs_default for s in seeds])
    assert heur > default


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
    wl = workload(list_bundled()[0])
    best = bl.search_static_best(wl, splits.TEST)
    r_best = run_episode(best, wl, 0, "static-best")
    r_default = run_episode(bl.Default(), wl, 0, "default")
    assert r_best.progress_vs_default >= r_default.progress_vs_default - 0.02
    assert len(best.levels) == len(KNOBS)
    assert values_to_levels(wl.defaults).shape == best.levels.shape
