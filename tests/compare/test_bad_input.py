"""People's mistakes with `autotune compare`: one line on stderr, exit status 2."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from autotune.tracking import store

if TYPE_CHECKING:
    from tests.compare.conftest import Made

Run = Callable[..., subprocess.CompletedProcess[str]]


def _one_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_unknown_experiment(run_cli: Run, made: Made) -> None:
    line = _one_line(run_cli("compare", "--tracking-uri", made.uri, "--experiment", "nope"))
    assert "no experiment 'nope'" in line and "autotune" in line


def test_empty_experiment(run_cli: Run, made: Made) -> None:
    c = store.client(made.uri)
    if c.get_experiment_by_name("empty") is None:
        c.create_experiment("empty")
    line = _one_line(run_cli("compare", "--tracking-uri", made.uri, "--experiment", "empty"))
    assert "experiment 'empty' has no runs" in line


def test_unknown_run_id(run_cli: Run, made: Made) -> None:
    line = _one_line(run_cli("compare", "--tracking-uri", made.uri, "--runs", "f" * 32))
    assert f"no run {'f' * 32}" in line


def test_runs_with_different_metrics(run_cli: Run, made: Made) -> None:
    ids = f"{made.session_ids[0]},{made.train_ids['ppo']}"
    r = run_cli(
        "compare", "--tracking-uri", made.uri, "--runs", ids, "--metric", "loop_cpu_percent"
    )
    line = _one_line(r)
    assert "runs have different metrics" in line
    assert f"{made.train_ids['ppo'][:8]} (train) has eval/progress_vs_default" in line
    assert "1 other(s) have loop_cpu_percent" in line


def test_a_metric_no_run_has(run_cli: Run, made: Made) -> None:
    line = _one_line(run_cli("compare", "--tracking-uri", made.uri, "--metric", "speed"))
    assert "no run in experiment 'autotune' has metric 'speed'" in line
    assert "progress_vs_default (" in line


def test_tracking_server_that_does_not_answer(run_cli: Run, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    line = _one_line(run_cli("compare", "--tracking-uri", f"http://127.0.0.1:{port}"))
    assert f"tracking server http://127.0.0.1:{port} does not answer" in line


def test_missing_local_store(run_cli: Run, tmp_path: Path) -> None:
    uri = "sqlite:///" + str(tmp_path / "none.db")
    line = _one_line(run_cli("compare", "--tracking-uri", uri))
    assert "no tracking store at" in line
    assert not (tmp_path / "none.db").exists(), "reading must not create a store"


def test_experiment_and_runs_together(run_cli: Run, made: Made) -> None:
    r = run_cli("compare", "--tracking-uri", made.uri, "--experiment", "x", "--runs", "y")
    assert "not both" in _one_line(r)
