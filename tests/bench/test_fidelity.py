"""The fidelity bench reads the real runs from a grid file and computes the replay's side now:
checked on a small synthetic grid (no real runs) against the phases recording's real replay."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest
from scipy.stats import spearmanr
from warm_cli import RunModule

from bench.envs import fidelity
from bench.grid.replay import predict, recording
from workloads.run import REPO

# Wall seconds per repeat; the default runs 10 s in both repeats, so each ratio is 10 / wall.
WALLS = {
    "default": (10.0, 10.0),
    "readahead=16": (20.0, 16.0),  # 0.50, 0.625: a real loss
    "readahead=1024": (8.0, 8.5),  # 1.25, 1.18: a real gain
    "readahead=4096": (9.0, 7.0),
    "weight.loader=8,weight.trainer=8": (10.2, 9.9),  # within 5 %: no sign to get right
    "weight.loader=0.25,weight.trainer=0.25": (12.5, 12.0),
    "weight.loader=2,weight.trainer=2": (10.1, 10.4),
    "prefetch.loader=4": (10.0, 10.0),  # not applicable: left out of the cells
}
FAMILY = {
    "default": "default",
    "readahead": "readahead",
    "weight": "weights",
    "prefetch": "prefetch",
}


def knobs(setting: str) -> dict[str, float]:
    if setting == "default":
        return {}
    return {k: float(v) for k, v in (item.split("=") for item in setting.split(","))}


def grid_entry() -> dict[str, Any]:
    settings, runs = [], []
    for name, walls in WALLS.items():
        s: dict[str, Any] = {
            "setting": name,
            "knobs": knobs(name),
            "family": FAMILY[name.split(".")[0].split("=")[0]],
            "replay_pick": False,
        }
        if name.startswith("prefetch"):
            s["not_applicable"] = "the job never acknowledged prefetch.loader=4"
        if name == "readahead=1024":
            s["verify"] = {"ratio": 1.21, "ci95": [1.1, 1.3], "n": 3}
        settings.append(s)
        for rep, wall in enumerate(walls):
            runs.append({"stage": "grid", "repeat": rep, "setting": name, "wall_s": wall})
    runs.append({"stage": "grid", "repeat": 1, "setting": "readahead=64", "error": "failed"})
    return {
        "settings": settings,
        "runs": runs,
        "static_best": {"setting": "readahead=1024", "ratio": 1.21, "ci95": [1.1, 1.3]},
    }


@pytest.fixture(scope="module")
def cells() -> list[dict[str, Any]]:
    wl, _ = recording("phases")
    return fidelity.cells("phases", grid_entry(), lambda s: predict(wl, s))


def test_one_cell_per_applicable_family(cells: list[dict[str, Any]]) -> None:
    assert sorted(c["family"] for c in cells) == ["readahead", "weights"]
    keys = {"workload", "family", "spearman", "repeat_ceiling", "mdape_ratio", "sign_errors"}
    for c in cells:
        assert keys <= set(c)
        assert c["workload"] == "phases"
        for s in c["settings"]:
            assert {"setting", "real_ratio", "predicted_ratio"} <= set(s)


def test_real_ratios_are_paired_by_repeat(cells: list[dict[str, Any]]) -> None:
    got = {s["setting"]: s for c in cells for s in c["settings"]}
    for name, (a, b) in WALLS.items():
        if name in got:
            assert got[name]["real_by_repeat"] == pytest.approx([10.0 / a, 10.0 / b])
            assert got[name]["real_ratio"] == pytest.approx(math.sqrt(10.0 / a * 10.0 / b))


def test_figures_follow_from_the_settings(cells: list[dict[str, Any]]) -> None:
    wl, _ = recording("phases")
    at_default = predict(wl, {})
    for c in cells:
        real = [s["real_ratio"] for s in c["settings"]]
        pred = [s["predicted_ratio"] for s in c["settings"]]
        for s in c["settings"]:
            assert s["predicted_ratio"] == pytest.approx(
                predict(wl, knobs(s["setting"])) / at_default
            )
        assert c["mdape_ratio"] == pytest.approx(
            statistics.median(abs(p / r - 1) for p, r in zip(pred, real, strict=True))
        )
        wrong = [
            s["setting"]
            for s in c["settings"]
            if abs(s["real_ratio"] - 1) > 0.05
            and (s["predicted_ratio"] - 1) * (s["real_ratio"] - 1) < 0
        ]
        assert c["sign_errors"] == len(wrong)
        if len(set(pred)) > 1:
            assert c["spearman"] == pytest.approx(spearmanr(pred, real).statistic)
        first = [s["real_by_repeat"][0] for s in c["settings"]]
        second = [s["real_by_repeat"][1] for s in c["settings"]]
        assert c["repeat_ceiling"] == pytest.approx(spearmanr(first, second).statistic)


def test_readahead_ceiling_from_the_repeats(cells: list[dict[str, Any]]) -> None:
    ra = next(c for c in cells if c["family"] == "readahead")
    # Repeat 1: 0.5 < 1.11 < 1.25; repeat 2: 0.625 < 1.18 < 1.43: the middle and top swap.
    assert ra["repeat_ceiling"] == pytest.approx(0.5)


def test_replay_pick_against_the_real_best() -> None:
    entry = grid_entry()
    near = fidelity.pick_vs_best(entry, {"readahead": 1024.0})
    assert near["replay_pick_real"]["pass"] == "verify"
    assert near["pick_within_5pct"] is True
    far = fidelity.pick_vs_best(entry, {"readahead": 16.0})
    assert far["replay_pick_real"]["ratio"] == pytest.approx(math.sqrt(0.5 * 0.625), rel=1e-3)
    assert far["pick_within_5pct"] is False
    gone = fidelity.pick_vs_best(entry, {"readahead": 16384.0})
    assert gone["replay_pick_real"] == "not in grid"
    assert "pick_within_5pct" not in gone
    assert fidelity.pick_vs_best(entry, {})["replay_pick_real"]["ratio"] == 1.0


def test_report_file_has_the_agreed_shape(tmp_path: Path) -> None:
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"workloads": {"phases": grid_entry()}}))
    out = tmp_path / "fidelity.json"
    fidelity.main(["--grid", str(grid), "--out", str(out)])
    doc = json.loads(out.read_text())
    assert {"commit", "machine", "date", "cells"} <= set(doc)
    assert len(doc["cells"]) == 2
    (w,) = doc["workloads"]
    assert w["workload"] == "phases" and "replay_pick" in w and "real_static_best" in w


@pytest.mark.parametrize(
    ("content", "says"),
    [(None, "cannot read the grid"), ("{", "cannot read the grid"), ("[]", "not a grid")],
)
def test_bad_grid_file_is_one_line_and_status_2(
    tmp_path: Path, content: str | None, says: str, run_module: RunModule
) -> None:
    grid = tmp_path / "grid.json"
    if content is not None:
        grid.write_text(content)
    out = tmp_path / "fidelity.json"
    r = run_module("bench.envs.fidelity", "--grid", str(grid), "--out", str(out), cwd=REPO)
    assert r.returncode == 2
    assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()
