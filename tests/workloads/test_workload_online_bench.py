"""The online bench (bench/online/online.py): its static-best read from the grid file, its
paired ratios, its refusals, and one tiny real run of every arm that needs no trained model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from warm_cli import RunModule

from bench.online import online
from workloads.run import REPO


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.online.online", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_grid_static_best_is_read_on_the_grid_base() -> None:
    entry = {
        "base": {"readahead": 128},
        "static_best": {"setting": "weight.loader=8,weight.trainer=8", "ratio": 3.1},
    }
    best, why = online.grid_static_best(entry)
    assert why == ""
    assert best == {"readahead": 128.0, "weight.loader": 8.0, "weight.trainer": 8.0}
    best, _ = online.grid_static_best(
        {"base": {"readahead": 128}, "static_best": {"setting": "default"}}
    )
    assert best == {"readahead": 128.0}
    best, _ = online.grid_static_best({"static_best": {"setting": {"readahead": 1024}}})
    assert best == {"readahead": 1024.0}


@pytest.mark.parametrize(
    "entry", [{}, {"static_best": {"setting": "weight.trainer=3"}}, {"static_best": "x"}]
)
def test_a_grid_entry_without_a_usable_setting_says_why(entry: dict[str, object]) -> None:
    best, why = online.grid_static_best(entry)
    assert best is None and why


def test_a_missing_or_damaged_grid_file_says_why(tmp_path: Path) -> None:
    assert online.grid_entry(tmp_path / "none.json", "cnn")[1].startswith("no grid file")
    bad = tmp_path / "grid.json"
    bad.write_text("{")
    assert "not readable JSON" in online.grid_entry(bad, "cnn")[1]
    bad.write_text(json.dumps({"workloads": {"shards": {}}}))
    assert online.grid_entry(bad, "cnn") == (None, f"{bad} has no entry for cnn")


def _row(repeat: int, wall: float, job: float) -> dict[str, float]:
    return {"repeat": repeat, "wall_s": wall, "job_s": job, "samples": 100}


def test_samples_are_one_count_or_one_per_job() -> None:
    assert online.parse_samples(None) == (None, {})
    assert online.parse_samples("2048") == (2048, {})
    assert online.parse_samples("cnn=9088, shards=22016") == (None, {"cnn": 9088, "shards": 22016})
    assert online.parse_samples("512,cnn=9088") == (512, {"cnn": 9088})


def test_ratios_pair_by_repeat_and_leave_out_a_failed_one() -> None:
    runs = {
        "default": [_row(0, 10, 8), _row(1, 12, 9), _row(2, 11, 8)],
        "tuned": [_row(0, 5, 4), {"repeat": 1, "error": "boom"}, _row(2, 5.5, 4)],
        "static_best": [_row(0, 4, 3), _row(1, 4, 3), _row(2, 4, 3)],
    }
    out = online.ratios(runs, 3)
    assert out["tuned_vs_default"]["n"] == 2  # repeat 1 failed under the tuner
    assert out["tuned_vs_default"]["ratio"] == pytest.approx(2.0)
    assert out["tuned_vs_static_best"]["ratio"] == pytest.approx((0.8 * 4 / 5.5) ** 0.5, rel=1e-3)
    assert out["tuned_vs_default"]["job_ratio"] == pytest.approx(2.0)
    assert "tuned_vs_alone" not in out  # no alone arm: a job without a neighbour


def test_rotation_starts_each_repeat_with_another_arm() -> None:
    arms = ["a", "b", "c"]
    assert [online.rotate(arms, r)[0] for r in range(3)] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--arms", "default,bogus"], "--arms takes names"),
        (["--arms", "tuned"], "need --model"),
        (["--arms", "default,challenger"], "needs --challenger"),
        (["--static-best", "weight.trainer=3"], "weight.trainer"),
        (["--repeats", "0"], "--repeats"),
        (["--samples", "0"], "not a positive sample count"),
        (["--samples", "cnn=9088,nosuchjob=64"], "no job named 'nosuchjob'"),
        (["--samples", "cnn=many"], "not a positive sample count"),
    ],
)
def test_bad_input_is_one_line_and_status_2(
    args: list[str], says: str, run_module: RunModule
) -> None:
    out = "/nonexistent/online.json"
    r = run_module("bench.online.online", *args, "--job", "cnn", "--out", out, cwd=REPO)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and says in r.stderr and "Traceback" not in r.stderr


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.usefixtures("nothing_left")
def test_a_tiny_run_writes_every_arm_in_the_issue_shape(
    isolated_settings: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tuner's MLflow run and spool go to this test's folder, not the checkout's runs/.
    monkeypatch.setenv("AUTOTUNE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("AUTOTUNE_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    out = tmp_path / "online.json"
    r = _bench(
        "--size", "tiny", "--samples", "64", "--repeats", "2", "--job", "cnn_noisy",
        "--arms", "default,static_best,static_tuned,alone",
        "--static-best", "weight.trainer=8,weight.loader=8", "--out", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert {"commit", "machine", "date"} <= set(doc)
    job = doc["jobs"]["cnn_noisy"]
    assert job["repeats"] == 2
    assert set(job["arms"]) == {"default", "static_best", "static_tuned", "alone"}
    for rows in job["arms"].values():
        assert [row["repeat"] for row in rows] == [0, 1]
        assert all(row["wall_s"] > row["job_s"] > 0 for row in rows)
    # Rotated: every arm runs at another place in the order in each repeat.
    assert all(rows[0]["position"] != rows[1]["position"] for rows in job["arms"].values())
    for key in ("static_best_vs_default", "static_tuned_vs_static_best", "default_vs_alone"):
        lo, hi = job[key]["ci95"]
        assert lo <= job[key]["ratio"] <= hi
    assert job["static_best"] == {
        "setting": {"readahead": 128.0, "weight.loader": 8.0, "weight.trainer": 8.0},
        "source": "--static-best (hand-picked, not a grid)",
    }
