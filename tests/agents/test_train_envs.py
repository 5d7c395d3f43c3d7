"""The envs training builds: the training part, and domain randomization when asked."""

from __future__ import annotations

import pytest

from autotune.agents import algos
from autotune.agents.train import _make_env
from autotune.envs import splits
from autotune.envs.workload import list_bundled, load


@pytest.mark.skipif("cnn" not in list_bundled(), reason="needs the cnn recording")
@pytest.mark.parametrize("randomize", [False, True])
def test_training_envs_replay_the_training_part_randomized_only_when_asked(
    randomize: bool,
) -> None:
    wl = load("cnn")
    env = _make_env([wl], algos.get("ppo"), seed=0, randomize=randomize)()
    inner = env.unwrapped
    assert inner.randomize is randomize
    # Every episode starts inside the training part, whichever node it replays.
    lo, hi = splits.bounds(len(wl), splits.TRAIN)
    nodes = []
    for seed in range(8):
        env.reset(seed=seed)
        assert lo <= inner._row < hi
        nodes.append(inner._params)
    # randomized: a bootstrap set per episode (several, none the best fit); else the best fit
    assert (len({id(p) for p in nodes}) > 1) is randomize
    assert all((p is wl.params) is not randomize for p in nodes)
