"""Each workload job, as a real process on tiny data, reports its progress in full."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from warm_cli import RunModule

from autotune.telemetry.progress import ProgressServer
from workloads import catalog, jobkit
from workloads.run import REPO, drain_progress

JOBS = {
    "cnn": ("workloads.cnn", catalog.WORKLOADS["cnn"].tiny_args),
    "shards": ("workloads.shards", catalog.WORKLOADS["shards"].tiny_args),
    "randread": ("workloads.randread", catalog.WORKLOADS["randread"].tiny_args),
    "randread-pread": (
        "workloads.randread",
        (*catalog.WORKLOADS["randread"].tiny_args, "--access", "pread"),
    ),
    "phases": ("workloads.phases", catalog.WORKLOADS["phases"].tiny_args),
}
SAMPLES = 24


def _job(
    module: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow  # a PyTorch process each: seconds apiece
@pytest.mark.parametrize("name", sorted(JOBS))
def test_job_reaches_its_samples_and_reports_them(name: str, tiny_data: Path) -> None:
    module, tiny_args = JOBS[name]
    with ProgressServer() as srv:
        r = _job(
            module,
            "--data-dir",
            str(tiny_data),
            "--samples",
            str(SAMPLES),
            "--drop-caches",
            *tiny_args,
            env=srv.env,
        )
        assert r.returncode == 0, r.stderr
        reported = drain_progress(srv)
    result = jobkit.parse_result(r.stdout)
    assert result is not None, r.stdout
    assert result["samples"] >= SAMPLES
    assert result["samples_per_s"] > 0
    # Every sample the job trained on arrived through the real channel, no more, no less.
    assert reported == result["samples"]


def test_job_without_its_data_says_so_in_one_line(tmp_path: Path, run_module: RunModule) -> None:
    r = run_module("workloads.shards", "--data-dir", str(tmp_path), cwd=REPO)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "make_data" in r.stderr
    assert "Traceback" not in r.stderr


def test_job_refuses_a_bad_sample_count(tiny_data: Path, run_module: RunModule) -> None:
    r = run_module("workloads.cnn", "--data-dir", str(tiny_data), "--samples", "0", cwd=REPO)
    assert r.returncode == 2
    assert "--samples must be positive" in r.stderr and "Traceback" not in r.stderr
