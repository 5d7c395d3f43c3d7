"""The never-seen job: a tiny transformer LM on the token file, run for real on tiny data, alone
and under the harness beside the neighbour; catalogued but never recorded nor trained on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from warm_cli import RunModule

from autotune.telemetry.progress import ProgressServer
from workloads import catalog, jobkit
from workloads.run import REPO, drain_progress, run_workload

SAMPLES = 24


def _tinylm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workloads.tinylm", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_tinylm_is_catalogued_but_never_recorded() -> None:
    w = catalog.get("tinylm")
    assert w.noisy and not w.recorded
    assert "tinylm" not in catalog.RECORDED
    assert not (REPO / "envs" / "workloads" / "tinylm.parquet").exists()


@pytest.mark.slow  # a PyTorch process: seconds
def test_tinylm_trains_on_tiny_data_and_reports_every_sample(tiny_data: Path) -> None:
    import os

    with ProgressServer() as srv:
        r = _tinylm(
            "--data-dir",
            str(tiny_data),
            "--samples",
            str(SAMPLES),
            *catalog.get("tinylm").tiny_args,
            env={**os.environ, **srv.env},
        )
        assert r.returncode == 0, r.stderr
        reported = drain_progress(srv)
    result = jobkit.parse_result(r.stdout)
    assert result is not None, r.stdout
    assert result["workload"] == "tinylm" and result["samples"] >= SAMPLES
    assert result["loss"] > 0
    assert reported == result["samples"]


def test_tinylm_refuses_a_bad_flag_in_one_line(tiny_data: Path, run_module: RunModule) -> None:
    r = run_module("workloads.tinylm", "--data-dir", str(tiny_data), "--block", "0", cwd=REPO)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "--block" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.usefixtures("nothing_left")
def test_tinylm_runs_tiny_under_the_harness_beside_the_neighbour(isolated_settings: Path) -> None:
    knobs = {"weight.trainer": 8.0, "weight.loader": 8.0, "readahead": 512.0}
    r = run_workload("tinylm", samples=64, knobs=knobs, size="tiny")
    assert r.noisy and r.samples >= 64
    assert r.in_effect == knobs  # held for the trainer and its workers
    assert r.reported_samples == r.samples
    assert r.wall_s > r.job_s > 0
