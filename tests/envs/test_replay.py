"""ReplayEnv on the bundled recorded workloads: Gymnasium's and SB3's checks, determinism, the
reward's meaning, the split parts, and clear errors for bad traces."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from workload_kit import bundled, workload

import autotune.envs
from autotune.envs import spaces, splits
from autotune.envs.replay import ReplayEnv
from autotune.envs.workload import list_bundled, load
from autotune.errors import UserError
from autotune.knobs import KNOBS
from autotune.trace import meta as trace_meta

BUNDLED = list_bundled()
pytestmark = pytest.mark.skipif(not BUNDLED, reason="no bundled workloads in envs/workloads")


def test_every_registered_id_passes_both_checkers() -> None:
    env = gym.make(autotune.envs.REPLAY_ID).unwrapped
    check_env(env, skip_render_check=True)
    sb3_check_env(env)


@pytest.mark.parametrize("wrapper", [spaces.DiscreteStep, spaces.BoxLevels])
def test_wrappers_pass_the_checkers(wrapper: type) -> None:
    env = wrapper(ReplayEnv(bundled(1)))
    check_env(env, skip_render_check=True)
    sb3_check_env(env)


def test_same_seed_same_episode() -> None:
    def episode(seed: int) -> list[float]:
        env = ReplayEnv(bundled())
        env.reset(seed=seed)
        env.action_space.seed(seed)
        out = []
        for _ in range(30):
            _, r, _, _, _ = env.step(env.action_space.sample())
            out.append(r)
        return out

    assert episode(3) == episode(3)
    assert episode(3) != episode(4)


def test_default_knobs_earn_nothing_without_noise() -> None:
    env = ReplayEnv(bundled(), noise=0.0)
    _, info = env.reset(seed=0)
    default = info["levels"]
    for _ in range(20):
        _, r, _, trunc, info = env.step(default)
        assert r == pytest.approx(0.0, abs=1e-9)
        assert info["rate"] == pytest.approx(info["rate_default"])
        if trunc:
            break


def test_the_noise_moves_no_settings_expected_rate() -> None:
    # cnn_noisy has the largest calibrated residual (log sd about 0.43): log-normal noise of
    # median one would score the default knobs exp(sd**2 / 2), about 1.09x themselves.
    wl = load("cnn_noisy")
    sd = float(wl.calibration["residual_sd"])
    env = ReplayEnv([wl], episode_steps=100)
    ratios = []
    for seed in range(30):
        _, info = env.reset(seed=seed)
        default = info["levels"]
        for _ in range(100):
            _, _, _, trunc, info = env.step(default)
            if info["rate_default"] > 0:
                ratios.append(info["rate"] / info["rate_default"])
            if trunc:
                break
    r = np.asarray(ratios)
    assert len(r) >= 2000
    assert np.std(np.log(r)) == pytest.approx(sd, rel=0.1)  # the noise is on
    assert r.mean() == pytest.approx(1.0, abs=0.03)


def test_knob_change_costs() -> None:
    env = ReplayEnv(bundled(), noise=0.0)
    _, info = env.reset(seed=0)
    moved = info["levels"].copy()
    moved[-1] = (moved[-1] + 1) % spaces.LEVELS[-1]  # the prefetch knob: changes little else
    _, _, _, _, info2 = env.step(moved)
    assert info2["changes"] == 1


def test_the_cost_of_a_change_is_the_envs_own() -> None:
    """The same move costs change_cost per knob changed, beside the same progress."""
    rewards = {}
    for cost in (0.0, 0.01, 0.2):
        env = ReplayEnv(bundled(), noise=0.0, change_cost=cost)
        _, info = env.reset(seed=0, options={"start": 5})
        moved = info["levels"].copy()
        moved[0] = (moved[0] + 1) % spaces.LEVELS[0]
        moved[-1] = (moved[-1] + 1) % spaces.LEVELS[-1]
        _, rewards[cost], _, _, info2 = env.step(moved)
        assert info2["changes"] == 2
    assert rewards[0.0] - rewards[0.01] == pytest.approx(0.02)
    assert rewards[0.0] - rewards[0.2] == pytest.approx(0.4)
    with pytest.raises(UserError, match="change_cost"):
        ReplayEnv(bundled(), change_cost=1.0)


def test_a_knob_held_off_its_default_costs_every_step() -> None:
    """off_default_cost is charged per knob away from its default in every step it stays
    there, not only in the step that moved it; back at default it costs nothing."""
    rewards: dict[float, list[float]] = {}
    for cost in (0.0, 0.03):
        env = ReplayEnv(bundled(), noise=0.0, change_cost=0.0, off_default_cost=cost)
        _, info = env.reset(seed=0, options={"start": 5})
        default = info["levels"].copy()
        moved = default.copy()
        moved[0] = (moved[0] + 1) % spaces.LEVELS[0]
        moved[-1] = (moved[-1] + 1) % spaces.LEVELS[-1]
        rewards[cost] = [env.step(a)[1] for a in (moved, moved, default)]
    assert [a - b for a, b in zip(rewards[0.0], rewards[0.03], strict=True)] == pytest.approx(
        [0.06, 0.06, 0.0]
    )
    with pytest.raises(UserError, match="off_default_cost"):
        ReplayEnv(bundled(), off_default_cost=-0.1)


def test_observation_reflects_the_knobs() -> None:
    from autotune.features import knob_levels

    env = ReplayEnv(bundled(), noise=0.0)
    env.reset(seed=1)
    action = env.action_space.sample()
    obs, _, _, _, _ = env.step(action)
    assert np.array_equal(knob_levels(obs), action)


def test_test_rows_are_never_trained_or_validated_on() -> None:
    wl = workload(BUNDLED[0])
    n = len(wl)
    train, valid = ReplayEnv([wl], rows=splits.TRAIN), ReplayEnv([wl], rows=splits.VALIDATION)
    test = ReplayEnv([wl], rows=splits.TEST, episode_steps=n)
    test_lo = int(splits.TEST[0] * n)
    for seed in range(5):
        for env, lo, hi in ((train, 0, int(0.6 * n)), (valid, int(0.6 * n), test_lo)):
            _, info = env.reset(seed=seed)
            rows = [info["row"]]
            done = False
            while not done:
                _, _, _, done, info = env.step(env.action_space.sample())
                rows.append(info["row"])
            assert lo <= min(rows) and max(rows) < hi
        _, k = test.reset(seed=seed)
        assert k["row"] >= test_lo


def test_action_outside_the_space_is_gymnasiums_error() -> None:
    env = ReplayEnv(bundled())
    env.reset(seed=0)
    with pytest.raises(gym.error.InvalidAction):
        env.step(np.array([99, 0, 0, 0, 0, 0]))


def test_options_pick_workload_and_start() -> None:
    env = ReplayEnv(bundled())
    _, info = env.reset(seed=0, options={"workload": BUNDLED[-1], "start": 0})
    assert info["workload"] == BUNDLED[-1]
    assert info["row"] == 0
    with pytest.raises(UserError, match="no workload 'nope'"):
        env.reset(options={"workload": "nope"})


# --- bad traces: each a clear error naming the file and the problem --------------------------


def _rewrite(tmp_path: Path, table: pa.Table, meta: dict[str, object]) -> Path:
    out = tmp_path / "bad.parquet"
    schema = table.schema.with_metadata({trace_meta.META_KEY: json.dumps(meta).encode()})
    pq.write_table(table.cast(schema), out)
    return out


@pytest.fixture
def real_trace() -> tuple[pa.Table, dict[str, object]]:
    from autotune.trace.reader import load_trace

    return load_trace(workload(BUNDLED[0]).path)


def test_unknown_workload_name() -> None:
    with pytest.raises(UserError, match=r"no workload named 'no-such'.*bundled workloads"):
        load("no-such")


def test_wrong_schema_version(tmp_path: Path, real_trace: tuple[pa.Table, dict]) -> None:
    table, meta = real_trace
    path = _rewrite(tmp_path, table, {**meta, "features_schema_version": 99})
    with pytest.raises(UserError, match=r"bad.parquet: recorded with observation schema 99"):
        load(path)


def test_missing_column(tmp_path: Path, real_trace: tuple[pa.Table, dict]) -> None:
    table, meta = real_trace
    path = _rewrite(tmp_path, table.drop(["trainer_oncpu_ns"]), meta)
    with pytest.raises(UserError, match=r"bad.parquet: missing columns trainer_oncpu_ns"):
        load(path)


def test_zero_rows(tmp_path: Path, real_trace: tuple[pa.Table, dict]) -> None:
    table, meta = real_trace
    path = _rewrite(tmp_path, table.slice(0, 0), meta)
    with pytest.raises(UserError, match=r"bad.parquet: the trace has no rows"):
        load(path)


def test_nan(tmp_path: Path, real_trace: tuple[pa.Table, dict]) -> None:
    table, meta = real_trace
    col = table.column("progress_samples").to_pylist()
    col[3] = float("nan")
    i = table.column_names.index("progress_samples")
    path = _rewrite(tmp_path, table.set_column(i, "progress_samples", pa.array(col)), meta)
    with pytest.raises(UserError, match=r"bad.parquet: column progress_samples has NaN.*row 3"):
        load(path)


def test_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3]}), path)
    with pytest.raises(UserError, match=r"foreign\.parquet is not an autotune trace"):
        load(path)


def test_bad_calibration_file(tmp_path: Path, real_trace: tuple[pa.Table, dict]) -> None:
    table, meta = real_trace
    path = _rewrite(tmp_path, table, meta)
    path.with_name("bad.calib.json").write_text("{not json")
    with pytest.raises(UserError, match=r"bad.calib.json: not a valid calibration file"):
        load(path)


def _split_action() -> np.ndarray:
    from autotune.envs import spaces

    values = {k.name: k.default for k in KNOBS if k.default is not None}
    return spaces.values_to_levels({**values, "readahead": 128.0, "cpus.trainer": 0.5})


@pytest.mark.skipif("cnn" not in list_bundled(), reason="needs the cnn recording")
def test_randomize_draws_a_plausible_node_per_episode() -> None:
    wl = load("cnn")
    assert wl.calibration.get("bootstrap"), "cnn's calibration carries no bootstrap sets"

    def rates(randomize: bool) -> set[float]:
        env = ReplayEnv([wl], noise=0.0, randomize=randomize)
        out = set()
        for seed in range(8):
            env.reset(seed=seed, options={"start": 10})
            out.add(round(env.step(_split_action())[4]["rate"], 6))
        return out

    assert len(rates(False)) == 1  # default off: the best fit, every episode
    assert len(rates(True)) > 1


@pytest.mark.parametrize("name", list_bundled())
def test_calibration_says_per_family_how_many_explored_rows_identified_it(name: str) -> None:
    explored = load(name).calibration["explored"]
    assert set(explored) == {"weights", "affinity", "readahead", "prefetch"}
    for family in explored.values():
        assert family["identified"] == (family["rows"] >= 40 and family["pairs"] >= 4)
