"""A sweep on a real two-node Ray cluster, logging to one real `autotune server`: trials land on
both nodes, nest under the sweep's run, the champion is registered, `models:/…@champion`
resolves, and (as root, with BPF) `autotune tune` runs a real job with it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ray_kit import AUTOTUNE, Server, TwoNodeCluster, sweep_file

from autotune.envs.workload import list_bundled

BUNDLED = list_bundled()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not BUNDLED, reason="no bundled workloads")]
BURN = Path(__file__).resolve().parents[1] / "daemon" / "burn.py"
# Two trials (the grid's two algorithms), one CPU each: with one CPU per node they run at
# once only if they run on different nodes.
SPACE = 'algo = { grid = ["ppo", "a2c"] }\nseed = [3]'


@pytest.fixture(scope="module")
def swept(
    two_nodes: TwoNodeCluster, autotune_server: Server, tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    tmp = tmp_path_factory.mktemp("sweep")
    sweep_file(tmp, SPACE, timesteps=384)
    env = {**two_nodes.env, "AUTOTUNE_RUNS_DIR": str(tmp / "runs")}
    r = subprocess.run(
        [
            *AUTOTUNE,
            "sweep",
            "--config",
            str(tmp / "sweep.toml"),
            "--address",
            two_nodes.address,
            "--tracking-uri",
            autotune_server.uri,
            "--no-live",
        ],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    found = dict(re.findall(r"^(sweep|champion|registered): (\S+)", r.stdout, re.M))
    return r, found


def test_trials_run_on_both_nodes_nested_under_the_sweep(
    swept: tuple[subprocess.CompletedProcess[str], dict[str, str]],
    autotune_server: Server,
    tmp_path: Path,
) -> None:
    from mlflow.tracking import MlflowClient

    _, found = swept
    c = MlflowClient(autotune_server.uri)
    sweep_run = c.get_run(found["sweep"])
    assert sweep_run.data.tags["autotune.kind"] == "sweep"
    assert sweep_run.data.tags["autotune.champion_run_id"] == found["champion"]
    local = c.download_artifacts(found["sweep"], "sweep.json", str(tmp_path))
    summary = json.loads(Path(local).read_text())
    trials = summary["trials"]
    assert len(trials) == 2
    assert {t["config"]["algo"] for t in trials} == {"ppo", "a2c"}
    assert len({t["node"] for t in trials}) == 2, trials  # one trial on each node
    children = c.search_runs(
        [sweep_run.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{found['sweep']}'",
    )
    assert len(children) == 2
    for child in children:
        tags = child.data.tags
        # The tags `autotune train` gives its runs, plus the trial's id.
        for key in ("autotune.algo", "autotune.workloads", "autotune.host", "autotune.git_commit"):
            assert tags[key]
        assert tags["autotune.kind"] == "train"
        assert tags["autotune.sweep_trial"] in {t["trial_id"] for t in trials}
        assert child.info.status == "FINISHED"
        assert c.get_metric_history(child.info.run_id, "eval/progress_vs_default")
    best = max(children, key=lambda ch: ch.data.metrics["train/best_progress_vs_default"])
    assert best.info.run_id == found["champion"]


def test_the_champion_is_registered_and_resolves(
    swept: tuple[subprocess.CompletedProcess[str], dict[str, str]],
    autotune_server: Server,
    tmp_path: Path,
) -> None:
    from autotune import policy as runtime
    from autotune.tracking.models import resolve_model_info

    _, found = swept
    assert re.fullmatch(r"models:/autotune-policy/\d+", found["registered"])
    got = resolve_model_info("models:/autotune-policy@champion", autotune_server.uri, tmp_path)
    assert got.tags["autotune.model_run_id"] == found["champion"]
    assert got.tags["autotune.model_alias"] == "champion"
    assert got.tags["autotune.model_uri"] == found["registered"]
    policy = runtime.load(got.path)  # the pickle-free policy, checked against this node
    assert policy.algo in {"ppo", "a2c"}


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("models:/autotune-policy@nope", "has no alias 'nope'"),
        ("models:/no-such-policy@champion", "no registered model 'no-such-policy'"),
        ("models:/autotune-policy/999", "has no version 999"),
        ("models:/autotune-policy", "models:/NAME@ALIAS or models:/NAME/VERSION"),
    ],
)
def test_a_registry_name_or_alias_that_does_not_exist_is_one_line(
    swept: object, autotune_server: Server, tmp_path: Path, model: str, message: str
) -> None:
    env = {**os.environ, "AUTOTUNE_RUNS_DIR": str(tmp_path / "runs")}
    r = subprocess.run(
        [*AUTOTUNE, "tune", "--model", model, "--tracking-uri", autotune_server.uri, "--", "true"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr


@pytest.mark.root
@pytest.mark.bpf
def test_tune_runs_a_real_job_with_the_champion(
    swept: tuple[subprocess.CompletedProcess[str], dict[str, str]],
    autotune_server: Server,
    tmp_path: Path,
) -> None:
    from mlflow.tracking import MlflowClient

    _, found = swept
    env = {
        **os.environ,
        "AUTOTUNE_JOURNAL": str(tmp_path / "journal.json"),
        "AUTOTUNE_RUNS_DIR": str(tmp_path / "runs"),
        "AUTOTUNE_CGROUP_PARENT": f"autotune-sweep-test-{os.getpid()}",
    }
    r = subprocess.run(
        [
            *AUTOTUNE,
            "tune",
            "--model",
            "models:/autotune-policy@champion",
            "--tracking-uri",
            autotune_server.uri,
            "--experiment",
            "sweep-tune",
            "--interval",
            "100",
            "--no-view",
            "--",
            sys.executable,
            str(BURN),
            "4",
            "1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    # The command does not wait for its last upload; `autotune sync` does (what it says to run).
    assert "autotune sync" in r.stderr, r.stderr
    sync = subprocess.run([*AUTOTUNE, "sync"], env=env, capture_output=True, text=True, timeout=300)
    assert sync.returncode == 0, sync.stderr
    c = MlflowClient(autotune_server.uri)
    exp = c.get_experiment_by_name("sweep-tune")
    assert exp is not None
    (tune_run,) = c.search_runs([exp.experiment_id])
    tags = tune_run.data.tags
    assert tags["autotune.kind"] == "tune"
    assert tags["autotune.model_name"] == "autotune-policy"
    assert tags["autotune.model_alias"] == "champion"
    assert f"models:/autotune-policy/{tags['autotune.model_version']}" == found["registered"]
    assert tags["autotune.model_run_id"] == found["champion"]
    assert (
        not (tmp_path / "journal.json").exists() or "[]" in (tmp_path / "journal.json").read_text()
    )


@pytest.mark.parametrize("form", ["ray://", "auto"])
def test_the_cluster_is_joined_through_ray_client_or_auto(
    two_nodes: TwoNodeCluster, autotune_server: Server, tmp_path: Path, form: str
) -> None:
    # Ray Client (the head's client server) and `auto` (RAY_ADDRESS, as `ray start` tells a
    # person to export) reach the same two nodes; one trial, nothing registered.
    sweep_file(tmp_path, 'algo = "ppo"\nseed = [5]')
    env = {**two_nodes.env, "AUTOTUNE_RUNS_DIR": str(tmp_path / "runs")}
    if form == "auto":
        address = "auto"
        env["RAY_ADDRESS"] = two_nodes.address
    else:
        address = f"ray://127.0.0.1:{two_nodes.client_port}"
    r = subprocess.run(
        [*AUTOTUNE, "sweep", "--config", "sweep.toml", "--address", address, "--no-register",
         "--experiment", f"join-{form.strip(':/')}", "--tracking-uri", autotune_server.uri,
         "--no-live"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-4000:] + two_nodes.client_server_logs()
    assert f"on Ray ({address}, 2 nodes, 2 CPUs)" in r.stderr, r.stderr
    assert re.search(r"^1 trials in \d+ s on 2 nodes: 0 stopped early, 0 failed$", r.stderr, re.M)
    found = dict(re.findall(r"^(sweep|champion): (\S+)", r.stdout, re.M))
    from mlflow.tracking import MlflowClient

    champion = MlflowClient(autotune_server.uri).get_run(found["champion"])
    assert champion.data.tags["mlflow.parentRunId"] == found["sweep"]
    assert champion.info.status == "FINISHED"
    assert "registered:" not in r.stdout
