"""The grid's plan, order and arithmetic (no real runs), and its refusals of bad input."""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path

import pytest
from warm_cli import RunModule

from autotune.errors import UserError
from autotune.knobs import KNOBS, Family, default_values
from bench.grid.grid import Grid, Runner, ratios_by_repeat, rotate, summarise, with_defaults
from bench.grid.settings import Setting, combined, cores, plan
from workloads.knobs import KnobNotHeld
from workloads.run import REPO, Result

BASE = {"readahead": 128.0}
DEFAULTS = default_values(128.0)


def test_plan_covers_every_family_off_the_recording() -> None:
    seen_ra = {**DEFAULTS, "readahead": 16.0}
    settings = plan(BASE, DEFAULTS, [DEFAULTS, seen_ra], None)
    assert settings[0].knobs == {} and settings[0].family == "default" and settings[0].seen
    for family in Family:
        mine = [s for s in settings if s.family == str(family)]
        ladder_off = sum(len(k.ladder) - 1 for k in KNOBS if k.family is family)
        assert len(mine) == min(5, ladder_off), family
        assert len({s.label for s in mine}) == len(mine)
        assert not any(s.seen for s in mine)  # enough unvisited rungs everywhere
    ra = [s.knobs["readahead"] for s in settings if s.family == "readahead"]
    assert 16.0 not in ra and 128.0 not in ra  # visited, and the base itself
    assert max(ra) / min(ra) >= 64  # spread over the ladder, not bunched


def test_visited_settings_fill_in_when_the_ladder_runs_out() -> None:
    visited = [{**DEFAULTS, "prefetch.loader": v} for v in (1.0, 4.0, 8.0)]
    pf = [s for s in plan(BASE, DEFAULTS, visited, None) if s.family == "prefetch"]
    assert [s.knobs["prefetch.loader"] for s in pf] == [1.0, 4.0, 8.0]
    assert all(s.seen for s in pf)


def test_replay_pick_is_marked_or_added() -> None:
    inside = plan(BASE, DEFAULTS, [], {"readahead": 1024.0})
    assert [s.label for s in inside if s.replay_pick] == ["readahead=1024"]
    pick = {"weight.trainer": 8.0, "readahead": 32.0}
    added = plan(BASE, DEFAULTS, [], pick)
    assert added[-1].knobs == pick and added[-1].replay_pick and added[-1].family == "combined"
    assert sum(s.replay_pick for s in added) == 1


def test_affinity_places_roles_differently_first() -> None:
    aff = [s.knobs for s in plan(BASE, DEFAULTS, [], None) if s.family == "affinity"]
    n = 2
    placed = [
        (cores(a.get("cpus.trainer", 1.0), n), cores(a.get("cpus.loader", 1.0), n)) for a in aff
    ]
    # Two cores: trainer alone on one, loaders alone on one, or split; never the default's (2, 2).
    if os.cpu_count() == n:
        assert set(placed[:3]) == {(1, 1), (1, 2), (2, 1)}
        assert (2, 2) not in placed


def test_rotation_visits_everything_each_repeat_in_another_order() -> None:
    items = list(range(8))
    orders = [rotate(items, r, 2) for r in range(2)]
    assert all(sorted(o) == items for o in orders)
    assert orders[0].index(0) != orders[1].index(0)
    assert rotate([], 0, 2) == []


def test_defaults_spread_between_the_settings() -> None:
    settings = [Setting({})] + [Setting({"readahead": float(16 << i)}) for i in range(9)]
    for rep in range(2):
        visits = with_defaults(rotate(settings, rep, 2), 3)
        labels = [s.label for s in visits]
        assert labels.count("default") == 3 and labels[0] != "default"
        assert sorted(set(labels)) == sorted(s.label for s in settings)
        gaps = [i for i, x in enumerate(labels) if x == "default"]
        assert min(b - a for a, b in itertools.pairwise(gaps)) >= 3


def test_several_defaults_in_a_repeat_make_one_geometric_mean() -> None:
    runs = [
        {"repeat": 0, "setting": "default", "wall_s": 5.0},
        {"repeat": 0, "setting": "readahead=16", "wall_s": 20.0},
        {"repeat": 0, "setting": "default", "wall_s": 20.0},
    ]
    got = ratios_by_repeat(runs)
    assert got["default"] == {0: 1.0}
    assert got["readahead=16"][0] == pytest.approx(0.5)  # sqrt(5 * 20) / 20


def test_ratios_are_wall_time_rates_paired_by_repeat() -> None:
    runs = [
        {"repeat": 0, "setting": "default", "wall_s": 10.0},
        {"repeat": 0, "setting": "readahead=16", "wall_s": 20.0},
        {"repeat": 1, "setting": "default", "wall_s": 8.0},
        {"repeat": 1, "setting": "readahead=16", "wall_s": 10.0},
        {"repeat": 2, "setting": "readahead=16", "wall_s": 1.0},  # no default: unpaired
    ]
    assert ratios_by_repeat(runs)["readahead=16"] == pytest.approx({0: 0.5, 1: 0.8})
    s = summarise(runs)["readahead=16"]
    assert s["ratio"] == pytest.approx(math.sqrt(0.5 * 0.8)) and s["n"] == 2
    assert s["ci95"][0] <= s["ratio"] <= s["ci95"][1]


def test_combined_settings_build_on_the_best_of_each_family() -> None:
    grid = [
        Setting({"readahead": 1024.0}, "readahead"),
        Setting({"readahead": 16.0}, "readahead"),
        Setting({"weight.trainer": 4.0, "weight.loader": 4.0}, "weights"),
        Setting({"weight.trainer": 8.0, "weight.loader": 8.0}, "weights"),
    ]
    ratios = {
        "readahead=1024": 1.3,
        "readahead=16": 0.5,
        "weight.loader=4,weight.trainer=4": 1.1,
        "weight.loader=8,weight.trainer=8": 1.0,
    }
    got = [s.knobs for s in combined(ratios, grid)]
    assert got == [
        {"weight.trainer": 8.0, "weight.loader": 8.0, "readahead": 1024.0},
        {"cpus.trainer": 0.5, "cpus.loader": 0.5, "weight.trainer": 4.0, "weight.loader": 4.0},
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--workload", "nope"], "unknown workload"),
        (["--workload", "cnn", "--repeats", "1"], "--repeats must be at least 2"),
        (["--workload", "cnn", "--verify-repeats", "2"], "--verify-repeats must be at least 3"),
        (["--workload", "cnn", "--samples", "0"], "--samples must be positive"),
    ],
)
def test_bad_arguments_are_one_line_and_status_2(
    args: list[str], says: str, run_module: RunModule
) -> None:
    r = run_module("bench.grid", *args, cwd=REPO)
    assert r.returncode == 2
    assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_damaged_result_file_is_refused_before_any_run(
    tmp_path: Path, run_module: RunModule
) -> None:
    out = tmp_path / "grid.json"
    out.write_text("{not json")
    r = run_module("bench.grid", "--workload", "cnn", "--out", str(out), cwd=REPO)
    assert r.returncode == 2 and "cannot read the grid" in r.stderr
    assert out.read_text() == "{not json"


class _RefusingBench:
    """Test double for workloads.run.Workbench (a real run takes the job's 20 intervals to give
    up): every run fails as the harness fails a knob the job never acknowledged."""

    def __init__(self) -> None:
        self.calls = 0

    def run(self, workload: str, samples: int, knobs: dict[str, float]) -> Result:
        self.calls += 1
        depth = knobs["prefetch.loader"]
        raise KnobNotHeld("prefetch.loader", depth, f"the job did not acknowledge depth {depth:g}")


def test_a_knob_the_job_cannot_hold_drops_its_family_instead_of_stopping_the_grid() -> None:
    prefetch = [Setting({"prefetch.loader": v}, "prefetch") for v in (1.0, 4.0, 8.0)]
    grid = Grid("phases", 64, dict(BASE), prefetch)
    bench = _RefusingBench()
    runner = Runner(bench, grid, log=lambda _: None)  # type: ignore[arg-type]
    runner.sweep("grid", prefetch, repeats=1, defaults=0)
    # One refusal is enough: the family's other settings are not run, and nothing failed.
    assert bench.calls == 1
    assert "did not acknowledge" in grid.not_applicable["prefetch"]
    assert runner.failed_in_a_row == 0
    assert grid.runs_of("grid") == []


def test_a_refused_knob_the_job_once_held_is_a_failure() -> None:
    prefetch = [Setting({"prefetch.loader": v}, "prefetch") for v in (1.0, 4.0, 8.0)]
    grid = Grid("cnn", 64, dict(BASE), prefetch)
    runner = Runner(_RefusingBench(), grid, log=lambda _: None)  # type: ignore[arg-type]
    runner.acknowledged.add("prefetch")
    with pytest.raises(UserError, match="3 runs in a row failed"):
        runner.sweep("grid", prefetch, repeats=1, defaults=0)
    assert grid.not_applicable == {}
