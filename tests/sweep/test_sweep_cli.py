"""`autotune sweep` as a person runs it: an embedded Ray that is gone afterwards, a crashing
trial reported while the others go on, and one line with exit status 2 for each mistake."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from ray_kit import AUTOTUNE, free_port, processes_naming

from autotune.envs.workload import list_bundled

BUNDLED = list_bundled()
Run = Callable[..., subprocess.CompletedProcess[str]]


def _one_line(r: subprocess.CompletedProcess[str], message: str) -> None:
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_an_unreachable_address_is_one_line(run_cli: Run, tmp_path: Path, scheme: str) -> None:
    address = f"{scheme}127.0.0.1:{free_port()}"
    env = {**os.environ, "AUTOTUNE_RUNS_DIR": str(tmp_path / "runs")}
    r = run_cli("sweep", "--address", address, cwd=tmp_path, env=env)
    _one_line(r, f"no Ray cluster answers at {address}")
    assert not (tmp_path / "runs" / "mlflow.db").exists()  # nothing logged for a typo


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("trials = 2\n[space\n", "not valid TOML"),
        ("[space]\nlearnin_rate = 0.1\n", "unknown search-space key 'learnin_rate'"),
    ],
)
def test_a_bad_sweep_file_is_one_line(
    run_cli: Run, tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / "sweep.toml").write_text(text)
    r = run_cli("sweep", "--config", "sweep.toml", cwd=tmp_path)
    _one_line(r, message)


def test_an_unknown_workload_is_one_line(run_cli: Run, tmp_path: Path) -> None:
    (tmp_path / "sweep.toml").write_text('[space]\nworkloads = [["no-such-workload"]]\n')
    r = run_cli("sweep", "--config", "sweep.toml", cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.slow
@pytest.mark.skipif(not BUNDLED, reason="no bundled workloads")
def test_a_crashing_trial_is_reported_and_the_sweep_goes_on(tmp_path: Path) -> None:
    # n_steps = 1 is a rollout PPO refuses (it needs n_steps * n_envs > 1), A2C takes it.
    (tmp_path / "sweep.toml").write_text(
        f"""
trials = 1
timesteps = 256
eval_freq = 128
tiny = true
[space]
algo = {{ grid = ["ppo", "a2c"] }}
n_steps = 1
workloads = ["{BUNDLED[0]}"]
"""
    )
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "AUTOTUNE_RUNS_DIR": str(tmp_path / "runs")}
    r = subprocess.run(
        [*AUTOTUNE, "sweep", "--config", "sweep.toml", "--no-live", "--num-cpus", "2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    failed = re.findall(r"^trial \S+ failed: (.+)$", r.stderr, re.M)
    assert failed and "n_steps" in failed[-1], r.stderr
    assert re.search(r"^registered: models:/autotune-policy/1\b", r.stdout, re.M), r.stdout
    from mlflow.tracking import MlflowClient

    c = MlflowClient(f"sqlite:///{tmp_path}/runs/mlflow.db")
    champion = re.search(r"^champion: (\S+)", r.stdout, re.M)
    assert champion is not None
    assert c.get_run(champion.group(1)).data.tags["autotune.algo"] == "a2c"
    # Nothing of the embedded Ray is left, and Ray wrote no token into the home folder.
    assert not processes_naming(["/tmp/atray-"])
    assert not (home / ".ray").exists()
