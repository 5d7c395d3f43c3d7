"""`autotune sweep` as a person runs it: an embedded Ray that is gone afterwards, a crashing
trial reported while the others go on, and one line with exit status 2 for each mistake."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ray_kit import AUTOTUNE, free_port, processes_naming, sweep_file

from autotune.envs.workload import list_bundled
from autotune.tracking import schema as ts

BUNDLED = list_bundled()
Run = Callable[..., subprocess.CompletedProcess[str]]


def _one_line(r: subprocess.CompletedProcess[str], message: str) -> None:
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr


def _sweep_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return {**os.environ, "HOME": str(home), "AUTOTUNE_RUNS_DIR": str(tmp_path / "runs")}


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_an_unreachable_address_is_one_line(run_cli: Run, tmp_path: Path, scheme: str) -> None:
    address = f"{scheme}127.0.0.1:{free_port()}"
    env = {**os.environ, "AUTOTUNE_RUNS_DIR": str(tmp_path / "runs")}
    r = run_cli("sweep", "--address", address, cwd=tmp_path, env=env)
    _one_line(r, f"no Ray cluster answers at {address}")
    assert not (tmp_path / "runs" / "mlflow.db").exists()  # nothing logged for a typo


def test_a_session_the_client_server_refused_is_named_by_its_reason() -> None:
    from agents.sweep.cluster import join_failure

    # Ray Client's own shape (util/client/worker.py): a headline, then the server's traceback;
    # before, the one line a person saw was the headline alone.
    trace = 'Traceback (most recent call last):\n  File "proxier.py", line 779\n'
    trace += "RuntimeError: Proxy failed to Connect to backend! Check `ray_client_server.err`"
    e = ConnectionAbortedError(f"Initialization failure from server:\n{trace}")
    assert join_failure(e) == trace.splitlines()[-1]
    assert join_failure(ConnectionError("ray client connection timeout")) == (
        "ray client connection timeout"
    )
    assert join_failure(TimeoutError()) == "TimeoutError"


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


def _command(cpus: int) -> list[str]:
    """`autotune sweep` of the test folder's sweep.toml, one line per event, on ``cpus`` CPUs."""
    return [*AUTOTUNE, "sweep", "--config", "sweep.toml", "--no-live", "--num-cpus", str(cpus)]


def _sweep(tmp_path: Path, cpus: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(cpus),
        cwd=tmp_path,
        env=_sweep_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=900,
    )


def _store(tmp_path: Path) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{tmp_path}/runs/mlflow.db")


def _runs(tmp_path: Path) -> list[Any]:
    """Every run in the test's store (none before the store and the experiment exist)."""
    if not (tmp_path / "runs" / "mlflow.db").exists():
        return []
    c = _store(tmp_path)
    exp = c.get_experiment_by_name(ts.DEFAULT_EXPERIMENT)
    return [] if exp is None else list(c.search_runs([exp.experiment_id], max_results=1000))


@pytest.mark.slow
@pytest.mark.skipif(not BUNDLED, reason="no bundled workloads")
def test_a_crashing_trial_is_reported_and_the_sweep_goes_on(tmp_path: Path) -> None:
    # n_steps = 1 is a rollout PPO refuses (it needs n_steps * n_envs > 1), A2C takes it.
    sweep_file(tmp_path, 'algo = { grid = ["ppo", "a2c"] }\nn_steps = 1')
    r = _sweep(tmp_path, cpus=2)
    assert r.returncode == 0, r.stderr[-3000:]
    failed = re.findall(r"^trial \S+ failed: (.+)$", r.stderr, re.M)
    assert failed and "n_steps" in failed[-1], r.stderr
    assert re.search(r"^registered: models:/autotune-policy/1\b", r.stdout, re.M), r.stdout
    c = _store(tmp_path)
    champion = re.search(r"^champion: (\S+)", r.stdout, re.M)
    assert champion is not None
    assert c.get_run(champion.group(1)).data.tags["autotune.algo"] == "a2c"
    # Nothing of the embedded Ray is left, and Ray wrote no token into the home folder.
    assert not processes_naming(["/tmp/atray-"])
    assert not (tmp_path / "home" / ".ray").exists()


@pytest.mark.slow
@pytest.mark.skipif(not BUNDLED, reason="no bundled workloads")
def test_one_worker_runs_trial_after_trial(tmp_path: Path) -> None:
    # Three trials on one CPU run one after another, all in the worker process that imported
    # torch and SB3 for the first (reuse_actors): Ray's per-trial start-up is paid once.
    sweep_file(tmp_path, 'algo = "ppo"\nseed = { grid = [0, 1, 2] }')
    r = _sweep(tmp_path, cpus=1)
    assert r.returncode == 0, r.stderr[-3000:]
    sweep = re.search(r"^sweep: (\S+)", r.stdout, re.M)
    assert sweep is not None, r.stdout
    c = _store(tmp_path)
    folder = c.download_artifacts(sweep.group(1), ts.SWEEP_ARTIFACT, str(tmp_path))
    trials = json.loads(Path(folder).read_text())["trials"]
    assert len(trials) == 3 and all(t["status"] == "done" for t in trials), trials
    pids = {t["worker_pid"] for t in trials}
    assert len(pids) == 1 and 0 not in pids, trials
    assert not processes_naming(["/tmp/atray-"])


@pytest.mark.slow
@pytest.mark.skipif(not BUNDLED, reason="no bundled workloads")
def test_ctrl_c_ends_the_trials_registers_nothing_and_leaves_no_ray(tmp_path: Path) -> None:
    # Two trials far from their budget; Ctrl-C reaches the command's whole process group, as
    # from a terminal.
    sweep_file(
        tmp_path, 'algo = "ppo"\nseed = { grid = [0, 1] }', timesteps=1_000_000, eval_freq=256
    )
    proc = subprocess.Popen(
        _command(cpus=2),
        cwd=tmp_path,
        env=_sweep_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")))
    reader.start()
    try:
        # Both trials have started, and have reported once (their runs exist).
        deadline = time.monotonic() + 600
        while sum(" started: " in x for x in lines) < 2 and proc.poll() is None:
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.5)
        while sum(ts.TAG_SWEEP_TRIAL in r.data.tags for r in _runs(tmp_path)) < 2:
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
            time.sleep(1)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        reader.join(30)
    assert proc.stdout is not None
    out, err = proc.stdout.read(), "".join(lines)
    assert proc.returncode == 130, err[-3000:]
    assert "stopping the sweep" in err and err.rstrip().endswith("interrupted"), err[-3000:]
    assert "registered:" not in out and "champion:" not in out
    runs = _runs(tmp_path)
    sweep = [r for r in runs if r.data.tags.get(ts.TAG_KIND) == ts.SWEEP]
    trials = [r for r in runs if ts.TAG_SWEEP_TRIAL in r.data.tags]
    assert len(sweep) == 1 and sweep[0].info.status == "KILLED"
    # Each trial ended at its next evaluation, with what it had: none left running.
    assert len(trials) == 2 and all(r.info.status == "FINISHED" for r in trials), [
        r.info.status for r in trials
    ]
    assert not _store(tmp_path).search_registered_models()
    assert not processes_naming(["/tmp/atray-"])
