"""record_all.sh records a real workload with `autotune record --explore` into a loadable trace."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from autotune.trace.reader import load_trace
from workloads.run import REPO

pytestmark = [pytest.mark.root, pytest.mark.bpf, pytest.mark.slow]


@pytest.mark.usefixtures("nothing_left")
def test_record_all_writes_an_explored_trace(tmp_path: Path, isolated_settings: Path) -> None:
    r = subprocess.run(
        [
            str(REPO / "workloads/record_all.sh"),
            *("--size", "tiny", "--only", "shards", "--out", str(tmp_path)),
            # Read-ahead is the fifth setting the explorer visits: 0.25 s holds and a job of
            # several seconds even on an idle VM (tiny shards: ≈800 samples/s) reach it easily.
            *("--hold", "0.25", "--samples", "8000"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["shards.parquet"]  # no temp files left
    table, meta = load_trace(tmp_path / "shards.parquet")
    assert meta["complete"] and meta["explore"] and meta["exit_status"] == 0
    assert "workloads.shards" in meta["command"]
    assert table.num_rows > 0
    assert sum(v or 0 for v in table.column("progress_samples").to_pylist()) > 0
    explored = {d["knob"] for d in meta["decisions"] if d["reason"] == "explore"}
    # The data disk is visible to the recorder from the job's first instant (its stdin), so
    # read-ahead is explored along with the CPU knobs.
    assert "readahead" in explored
    assert len(set(table.column("knob_readahead").to_pylist()) - {None}) > 1


def test_record_all_refuses_an_unknown_workload(tmp_path: Path) -> None:
    r = subprocess.run(
        [str(REPO / "workloads/record_all.sh"), "--only", "nope", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert "unknown workload 'nope'" in r.stderr and "Traceback" not in r.stderr
    assert not any(tmp_path.iterdir())
