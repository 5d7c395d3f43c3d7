"""The evaluation protocol's statistics: runs are training seeds when a policy has several
models, and rliable's figures mean what they say."""

from __future__ import annotations

import numpy as np
import pytest
from workload_kit import workload

from autotune.agents.baselines import Default, Heuristic
from autotune.agents.evaluate import EpisodeResult, evaluate, score_matrix, summarize
from autotune.envs import splits
from autotune.envs.workload import list_bundled


def _episode(policy: str, workload: str, seed: int, score: float, run: int = 0) -> EpisodeResult:
    return EpisodeResult(policy, workload, seed, score, 0.0, 0.0, 100, run)


def test_several_models_are_runs_and_their_seeds_are_averaged() -> None:
    rs = [
        _episode("ppo", w, seed, 1.1 + 0.01 * run + 0.001 * seed, run)
        for w in ("a", "b")
        for run in range(5)
        for seed in (7, 8)
    ]
    m = score_matrix(rs, ["a", "b"])
    assert m.shape == (5, 2)
    assert m[3, 0] == pytest.approx(1.1 + 0.03 + 0.0075)
    one_model = [r for r in rs if r.run == 0]
    assert score_matrix(one_model, ["a", "b"]).shape == (2, 2)  # then a run is an eval seed


def test_summary_interval_iqm_and_probability_of_improvement() -> None:
    rng = np.random.default_rng(0)
    rs = []
    for w in ("a", "b", "c"):
        for seed in range(5):
            rs.append(_episode("default", w, seed, 1.0 + rng.normal(0, 0.005)))
            rs.append(_episode("static-best", w, seed, 1.1 + rng.normal(0, 0.005)))
        for run in range(5):
            rs.append(_episode("ppo", w, 99, 1.05 + rng.normal(0, 0.01), run))
    got = {(s.policy, s.workload): s for s in summarize(rs, reps=200, poi_reps=50)}
    ppo = got[("ppo", "all")]
    assert ppo.n == 5
    assert ppo.low <= ppo.mean <= ppo.high
    assert 1.03 < ppo.mean < 1.07 and 1.03 < ppo.iqm < 1.07
    assert ppo.p_improve["default"][0] == 1.0  # every run beats every default episode
    assert ppo.p_improve["static-best"][0] == 0.0
    assert "default" not in got[("default", "a")].p_improve


@pytest.mark.skipif(not list_bundled(), reason="no bundled workloads")
def test_evaluate_runs_each_model_of_a_policy_on_the_test_part() -> None:
    wl = workload(list_bundled()[0])
    seeds = splits.eval_seeds(2)
    rs = evaluate({"two": [lambda _w: Default(), lambda _w: Heuristic()]}, [wl], seeds)
    assert sorted({(r.run, r.seed) for r in rs}) == [
        (0, seeds[0]),
        (0, seeds[1]),
        (1, seeds[0]),
        (1, seeds[1]),
    ]
    lo, hi = splits.bounds(len(wl), splits.TEST)
    assert all(r.steps == hi - lo - 2 for r in rs)  # the part's rows less two
