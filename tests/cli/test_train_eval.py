"""`autotune train` and `autotune eval` end to end on the bundled workloads, tracked in MLflow."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from autotune.envs.splits import EVAL_SEED_BASE
from autotune.envs.workload import list_bundled

BUNDLED = list_bundled()
pytestmark = [
    pytest.mark.skipif(not BUNDLED, reason="no bundled workloads"),
    pytest.mark.slow,
]
CLI = [sys.executable, "-m", "autotune.cli.main"]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("train")
    return {
        **os.environ,
        "AUTOTUNE_RUNS_DIR": str(tmp / "runs"),
        "AUTOTUNE_TRACKING_URI": f"sqlite:///{tmp}/runs/mlflow.db",
    }


@pytest.fixture(scope="module")
def trained(env: dict[str, str]) -> tuple[str, Path]:
    r = subprocess.run(
        [
            *CLI,
            "train",
            "--tiny",
            "--timesteps",
            "256",
            "--eval-freq",
            "128",
            "--seed",
            "1",
            "--change-cost",
            "0.05",
            "--randomize",
            "--no-progress",
            "--workload",
            BUNDLED[0],
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    run_id = re.search(r"^run: (\S+)$", r.stdout, re.M)
    policy = re.search(r"^policy: (.+)$", r.stdout, re.M)
    assert run_id and policy, r.stdout
    return run_id.group(1), Path(policy.group(1))


def test_train_tracks_the_run_and_exports_a_loadable_policy(
    trained: tuple[str, Path], env: dict[str, str]
) -> None:
    from mlflow.tracking import MlflowClient

    from autotune import policy as runtime

    run_id, folder = trained
    pol = runtime.load(folder)
    assert pol.algo == "ppo"
    client = MlflowClient(env["AUTOTUNE_TRACKING_URI"])
    run = client.get_run(run_id)
    assert run.data.tags["autotune.kind"] == "train"
    assert run.data.params["algo"] == "ppo"
    assert float(run.data.params["change_cost"]) == 0.05
    assert run.data.params["randomize"] == "True"
    assert "eval/progress_vs_default" in run.data.metrics
    assert client.get_metric_history(run_id, "eval/progress_vs_default")
    assert any(a.path == "policy" for a in client.list_artifacts(run_id))


def test_eval_by_run_id_against_baselines(
    trained: tuple[str, Path], env: dict[str, str], tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    run_id, _ = trained
    plot = tmp_path / "eval.png"
    r = subprocess.run(
        [
            *CLI,
            "eval",
            "--model",
            run_id,
            "--baselines",
            "default,heuristic",
            "--seeds",
            "2",
            "--workload",
            BUNDLED[0],
            "--plot",
            str(plot),
        ],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    assert "progress vs default (test parts)" in r.stdout
    assert "IQM" in r.stdout and "P(> default)" in r.stdout
    for policy in ("ppo", "default", "heuristic"):
        assert policy in r.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    client = MlflowClient(env["AUTOTUNE_TRACKING_URI"])
    exp = client.get_experiment_by_name("autotune")
    results = client.search_runs(
        [exp.experiment_id], "tags.`autotune.kind` = 'eval_result'", max_results=100
    )
    assert len(results) == 3 * 2  # 3 policies x 2 seeds on one workload
    # Evaluation seeds are never the training seed (1), nor any seed training may use.
    seeds = {int(x.data.tags["autotune.seed"]) for x in results}
    assert len(seeds) == 2 and min(seeds) >= EVAL_SEED_BASE
    ppo = [x for x in results if x.data.tags["autotune.policy"] == "ppo"]
    assert all(x.data.tags["autotune.model_run_id"] == run_id for x in ppo)
    defaults = [
        x.data.metrics["progress_vs_default"]
        for x in results
        if x.data.tags["autotune.policy"] == "default"
    ]
    assert all(abs(v - 1.0) < 0.1 for v in defaults)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--algo", "nope"], "nope"),
        (["train", "--workload", "no-such-workload"], "no workload named 'no-such-workload'"),
        (["train", "--timesteps", "0"], "timesteps"),
        (["train", "--seed", "1000000"], "seed"),
        (["train", "--threads", "0"], "threads"),
        (["train", "--change-cost", "1"], "change-cost"),
        (["eval", "--model", "/no/such/policy"], "neither a path nor an MLflow run id"),
        (["eval", "--baselines", "best"], "unknown baseline 'best'"),
        (["eval", "--model", "0" * 32], "no run"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], needle: str, env: dict[str, str]) -> None:
    r = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert needle in lines[0]
