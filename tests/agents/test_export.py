"""Exported policies act exactly as the SB3 models they came from, with numpy alone, and a
policy for another schema or knob table is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from workload_kit import bundled

from autotune import policy as runtime
from autotune.agents import algos
from autotune.agents.export import export
from autotune.envs.replay import ReplayEnv
from autotune.envs.workload import list_bundled
from autotune.errors import UserError
from autotune.features import N_FEATURES, knob_levels

BUNDLED = list_bundled()
pytestmark = pytest.mark.skipif(not BUNDLED, reason="no bundled workloads in envs/workloads")


def _tiny(name: str) -> object:
    algo = algos.get(name)
    env = ReplayEnv(bundled(1))
    wrapped = algo.wrapper(env) if algo.wrapper else env
    model = algo.load_class()(algo.policy, wrapped, seed=0, **algo.hyperparameters(tiny=True))
    model.learn(64)
    return model


@pytest.mark.parametrize("name", ["ppo", "a2c", "dqn", "sac"])
def test_exported_policy_decides_like_the_model(name: str, tmp_path: Path) -> None:
    model = _tiny(name)
    # export() itself checks agreement on random observations; check on real ones too.
    pol = runtime.load(export(model, tmp_path / "p", algo=name))
    env = ReplayEnv(bundled(1))
    obs, _ = env.reset(seed=0)
    for _ in range(20):
        ours = pol.decide(obs, knob_levels(obs))
        theirs, _ = model.predict(obs, deterministic=True)  # type: ignore[attr-defined]
        if pol.action_kind == "multidiscrete":
            assert np.array_equal(ours, theirs)
        obs, _, _, _, _ = env.step(ours)
    assert not any(p.suffix == ".pkl" for p in (tmp_path / "p").iterdir())


def test_recurrent_policy_keeps_its_state_like_the_model(tmp_path: Path) -> None:
    model = _tiny("recurrent-ppo")
    pol = runtime.load(export(model, tmp_path / "p", algo="recurrent-ppo"))
    env = ReplayEnv(bundled(1))
    obs, _ = env.reset(seed=0)
    state, start = None, np.ones((1,), dtype=bool)
    for _ in range(15):
        theirs, state = model.predict(obs, state=state, episode_start=start, deterministic=True)  # type: ignore[attr-defined]
        ours, _ = pol.predict(obs, episode_start=start)
        assert np.array_equal(ours, theirs)
        start = np.zeros((1,), dtype=bool)
        obs, _, _, _, _ = env.step(ours)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(_tiny("ppo"), tmp_path_factory.mktemp("pol") / "p", algo="ppo")


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_missing_policy(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such policy"):
        runtime.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a policy folder"):
        runtime.load(tmp_path / "empty")


def test_corrupt_weights(exported: Path, tmp_path: Path) -> None:
    p = _copy(exported, tmp_path / "c")
    (p / runtime.WEIGHTS_FILE).write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(UserError, match="corrupt policy weights"):
        runtime.load(p)


def test_corrupt_metadata(exported: Path, tmp_path: Path) -> None:
    p = _copy(exported, tmp_path / "m")
    (p / runtime.META_FILE).write_text("{")
    with pytest.raises(UserError, match="not valid policy metadata"):
        runtime.load(p)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("schema_version", 99, "trained for observation schema 99"),
        ("knob_table_version", 99, "trained for knob table 99"),
        ("format", "other", "is not an autotune policy"),
    ],
)
def test_other_schema_or_knob_table_is_refused(
    exported: Path, tmp_path: Path, field: str, value: object, message: str
) -> None:
    p = _copy(exported, tmp_path / field)
    meta = json.loads((p / runtime.META_FILE).read_text())
    meta[field] = value
    (p / runtime.META_FILE).write_text(json.dumps(meta))
    with pytest.raises(UserError, match=message):
        runtime.load(p)


def test_changed_ladder_is_refused(exported: Path, tmp_path: Path) -> None:
    p = _copy(exported, tmp_path / "ladder")
    meta = json.loads((p / runtime.META_FILE).read_text())
    meta["knobs"][0]["ladder"] = [1.0, 2.0]
    (p / runtime.META_FILE).write_text(json.dumps(meta))
    with pytest.raises(UserError, match="trained for knob table"):
        runtime.load(p)


def test_observation_of_the_wrong_length(exported: Path) -> None:
    pol = runtime.load(exported)
    with pytest.raises(UserError, match=f"the schema {N_FEATURES}"):
        pol.decide(np.zeros(N_FEATURES + 1, np.float32), np.zeros(6, np.int64))
