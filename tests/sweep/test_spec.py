"""Sweep files: defaults, the forms a search-space key takes, and one clear line for each
mistake (good and bad fixtures checked against the schema, as MLOS does for its knobs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autotune.agents.sweep import spec
from autotune.errors import UserError


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sweep.toml"
    p.write_text(text)
    return p


def test_no_file_is_the_default_sweep() -> None:
    s = spec.load(None)
    assert s.trials == 8 and s.registry.name == "autotune-policy" and s.registry.alias == "champion"
    assert set(s.space) == set(spec.DEFAULT_SPACE)


def test_every_form_of_a_key_becomes_a_ray_domain(tmp_path: Path) -> None:
    from ray.tune.search.sample import Categorical, Float, Integer

    s = spec.load(
        _write(
            tmp_path,
            """
trials = 3
[space]
algo = ["ppo", "a2c"]
seed = { randint = [0, 10] }
learning_rate = { loguniform = [1e-4, 1e-2] }
gamma = { uniform = [0.8, 0.99] }
n_steps = 64
net_arch = [[16], [32, 32]]
workloads = [["cnn", "shards"], "randread"]
frame_stack = { grid = [1, 4] }
""",
        )
    )
    space = spec.search_space(s.space)
    assert isinstance(space["algo"], Categorical)
    assert isinstance(space["seed"], Integer)
    assert isinstance(space["learning_rate"], Float) and isinstance(space["gamma"], Float)
    assert space["n_steps"] == 64
    assert space["frame_stack"] == {"grid_search": [1, 4]}
    assert spec.grid_size(s.space) == 2
    assert spec.workload_subsets(s.space) == [["cnn", "shards"], ["randread"]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("trials = [", "not valid TOML"),
        ("trails = 3", "trails: unknown setting"),
        ("trials = 0", "trials: Input should be greater than or equal to 1"),
        ("[asha]\ngrace = 1", "asha.grace: unknown setting"),
        ("[space]\nlr = 0.1", "unknown search-space key 'lr'"),
        ("[space]\nalgo = 'td3'", "space.algo: 'td3' is not one of ppo"),
        ("[space]\ngamma = { uniform = [0.99, 0.8] }", "uniform needs [low, high] with low < high"),
        ("[space]\nlearning_rate = { loguniform = [0, 0.1] }", "space.learning_rate"),
        ("[space]\ngamma = { normal = [0.9, 0.1] }", "a table holds one of choice"),
        ("[space]\nseed = []", "an empty list allows nothing"),
        ("[space]\nalgo = { uniform = [1, 2] }", "space.algo"),
        ("[registry]\nalias = 'latest'", "alias 'latest' is not allowed"),
        ("[registry]\nname = 'a/b'", "registered model name 'a/b' is not allowed"),
    ],
)
def test_mistakes_are_one_line_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UserError) as e:
        spec.load(_write(tmp_path, text))
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such sweep file"):
        spec.load(tmp_path / "nope.toml")


def test_hyperparameters_go_where_the_algorithm_takes_them() -> None:
    from autotune.agents.sweep.trial import hyperparameters

    config = {"algo": "dqn", "n_epochs": 3, "learning_rate": 1e-3, "net_arch": [8]}
    overrides, ignored = hyperparameters(config, tiny=True)
    assert overrides["learning_rate"] == 1e-3
    assert overrides["policy_kwargs"]["net_arch"] == [8]
    assert ignored == ["n_epochs"]  # DQN has no epochs over a rollout
    overrides, ignored = hyperparameters({**config, "algo": "recurrent-ppo"}, tiny=True)
    assert overrides["n_epochs"] == 3 and not ignored
    # The LSTM's own size stays when only the layers are swept.
    assert overrides["policy_kwargs"]["lstm_hidden_size"] == 16
