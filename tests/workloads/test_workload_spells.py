"""Workloads whose best setting changes during the run: seeded spells, the neighbour that comes
and goes, the mixed_io job, and the harness switching knobs at each spell (an oracle)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from warm_cli import RunModule

from autotune.errors import UserError
from autotune.target import descendants
from autotune.telemetry.progress import ProgressServer
from workloads import catalog, disk, jobkit, mixed_io, spells
from workloads.neighbour import OnOffNeighbour
from workloads.run import (
    BENCH_SPELL_S,
    REPO,
    SPELL_S,
    Workbench,
    drain_progress,
    spell_args,
)

needs_stress = pytest.mark.skipif(shutil.which("stress-ng") is None, reason="needs stress-ng")


def test_a_schedule_alternates_its_kinds_within_bounds_and_repeats_by_seed() -> None:
    first = [s for _, s in zip(range(12), spells.schedule(3, ("on", "off"), 10, 40), strict=False)]
    again = [s for _, s in zip(range(12), spells.schedule(3, ("on", "off"), 10, 40), strict=False)]
    other = [s for _, s in zip(range(12), spells.schedule(4, ("on", "off"), 10, 40), strict=False)]
    assert first == again != other
    assert [s.kind for s in first] == ["on", "off"] * 6
    assert [s.index for s in first] == list(range(12))
    assert all(10 <= s.length <= 40 for s in first)


@pytest.mark.parametrize("bounds", [(0.0, 1.0), (5.0, 2.0)])
def test_a_schedule_refuses_bad_bounds(bounds: tuple[float, float]) -> None:
    with pytest.raises(UserError, match="0 < low <= high"):
        next(spells.schedule(0, ("a", "b"), *bounds))


def test_a_spell_line_reads_back_and_other_lines_do_not(capsys: pytest.CaptureFixture[str]) -> None:
    spells.announce(spells.Spell(2, "seq", 300.0))
    line = capsys.readouterr().out.strip()
    assert spells.parse(line) == spells.Spell(2, "seq", 300.0)
    assert spells.parse("RESULT {}") is None
    assert spells.parse(spells.SPELL_PREFIX + "{not json") is None


def test_mixed_io_plans_its_spells_in_samples_at_the_reference_rates() -> None:
    plan = mixed_io.plan(200_000, 0, (10.0, 40.0))
    assert sum(s.length for s in plan) == 200_000
    assert [s.kind for s in plan] == [("seq", "random")[i % 2] for i in range(len(plan))]
    lengths = spells.schedule(0, mixed_io.KINDS, 10.0, 40.0)
    for s, drawn in zip(plan[:-1], lengths, strict=False):
        assert s.length == round(drawn.length * mixed_io.REFERENCE_RATE[s.kind])


@pytest.mark.slow  # a PyTorch process and its workers, twice per spell
def test_mixed_io_announces_each_spell_and_reports_every_sample(tiny_data: Path) -> None:
    w = catalog.get("mixed_io")
    samples = 96
    with ProgressServer() as srv:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                w.module,
                "--data-dir",
                str(tiny_data),
                "--samples",
                str(samples),
                "--drop-caches",
                *w.tiny_args,
            ],
            cwd=REPO,
            env={**os.environ, **srv.env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr
        reported = drain_progress(srv)
    announced = [s for s in map(spells.parse, r.stdout.splitlines()) if s is not None]
    result = jobkit.parse_result(r.stdout)
    assert result is not None
    assert [s.kind for s in announced] == [d["kind"] for d in result["spells"]]
    assert {s.kind for s in announced} == {"seq", "random"}  # tiny spells: both kinds ran
    assert all(d["samples"] >= s.length for d, s in zip(result["spells"], announced, strict=True))
    assert result["samples"] >= samples
    assert reported == result["samples"]


def test_mixed_io_refuses_bad_spell_bounds_in_one_line(
    tiny_data: Path, run_module: RunModule
) -> None:
    r = run_module("workloads.mixed_io", "--data-dir", str(tiny_data), "--spell-s", "ten", cwd=REPO)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "--spell-s" in r.stderr and "Traceback" not in r.stderr


def _running(pids: list[int]) -> bool:
    def alive(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    return any(alive(p) for p in pids)


@needs_stress
def test_the_neighbour_comes_and_goes_on_its_schedule_and_stops_every_hog() -> None:
    seen_on: list[int] = []
    with OnOffNeighbour(cpus=1, seed=1, spell_s=(0.4, 0.6)) as n:
        assert n.running()  # the first spell is on, begun before the block
        seen_on = n.pids()
        assert len(seen_on) == 2  # stress-ng and its hog
        deadline = time.monotonic() + 30
        while len(n.history) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        kinds = [s.kind for s in n.poll()]
    assert kinds[:4] == ["on", "off", "on", "off"]
    starts = [t for t, _ in n.history]
    assert starts == sorted(starts)
    assert descendants(os.getpid()) == []
    assert not _running(seen_on)
    assert not n.running() and n.pids() == []


@needs_stress
def test_the_neighbour_stops_when_the_block_fails() -> None:
    with pytest.raises(RuntimeError), OnOffNeighbour(cpus=1, spell_s=(5.0, 5.0)) as n:
        pids = n.pids()
        raise RuntimeError("the job failed")
    assert descendants(os.getpid()) == []
    assert not _running(pids)


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.usefixtures("nothing_left")
def test_the_oracle_switches_read_ahead_as_each_spell_of_mixed_io_begins(
    isolated_settings: Path,
) -> None:
    oracle = {"seq": {"readahead": 4096.0}, "random": {"readahead": 16.0}}
    with Workbench("tiny") as wb:
        assert wb.device is not None
        original = disk.read_ahead_kb(wb.device)
        r = wb.run("mixed_io", 96, oracle=oracle)
        assert disk.read_ahead_kb(wb.device) == original
    kinds = [s["kind"] for s in r.spells]
    assert kinds == [s["kind"] for s in r.job["spells"]]
    assert {"seq", "random"} <= set(kinds)
    for s in r.spells:
        assert s["in_effect"] == oracle[s["kind"]]
    assert r.reported_samples == r.samples == sum(s["samples"] for s in r.spells)


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.usefixtures("nothing_left")
@needs_stress
def test_the_oracle_switches_weights_as_the_neighbour_comes_and_goes(
    isolated_settings: Path,
) -> None:
    on = {"readahead": 128.0, "weight.trainer": 8.0, "weight.loader": 8.0}
    off = {"readahead": 128.0, "weight.trainer": 0.5, "weight.loader": 0.5}
    with Workbench("tiny", spell_s=(1.0, 1.5)) as wb:
        # Enough samples for a few seconds beside the neighbour: both kinds of spell come.
        r = wb.run("neighbour_onoff", 4096, oracle={"on": on, "off": off})
    assert r.noisy
    kinds = [s["kind"] for s in r.spells]
    assert kinds[:2] == ["on", "off"]
    for s in r.spells[:-1]:
        assert s["in_effect"] == (on if s["kind"] == "on" else off)
    # The last spell may begin as the job exits: nothing switched then, or only the knobs set
    # before the job was gone (CI saw weight.trainer switched and weight.loader not); never a
    # value of the other kind of spell.
    last = on if kinds[-1] == "on" else off
    assert r.spells[-1]["in_effect"].items() <= last.items()
    assert r.reported_samples == r.samples == sum(s["samples"] for s in r.spells)


def test_a_job_with_spells_of_its_own_gets_the_workbench_spell_lengths() -> None:
    assert spell_args(catalog.get("mixed_io"), BENCH_SPELL_S) == ["--spell-s", "4,8"]
    assert spell_args(catalog.get("neighbour_onoff"), BENCH_SPELL_S) == []  # the neighbour's
    assert spell_args(catalog.get("shards"), BENCH_SPELL_S) == []
    # The job's own default is the workbench's: a plain run is the job as recorded.
    assert spell_args(catalog.get("mixed_io"), SPELL_S) == [
        "--spell-s",
        f"{mixed_io.SPELL_S[0]:g},{mixed_io.SPELL_S[1]:g}",
    ]


def test_a_bad_oracle_is_refused_before_anything_runs() -> None:
    wb = Workbench("tiny")  # never opened: the checks come first
    with pytest.raises(UserError, match="has no spells"):
        wb.run("shards", 16, oracle={"seq": {"readahead": 16.0}})
    with pytest.raises(UserError, match="gives settings for seq, random"):
        wb.run("mixed_io", 16, oracle={"seq": {"readahead": 16.0}})
    with pytest.raises(UserError, match="same knobs"):
        wb.run(
            "mixed_io",
            16,
            oracle={"seq": {"readahead": 16.0}, "random": {"weight.trainer": 2.0}},
        )
    with pytest.raises(UserError, match="run it noisy"):
        wb.run("neighbour_onoff", 16, noisy=False, oracle={"on": {}, "off": {}})


@pytest.mark.parametrize("name", ["mixed_io", "neighbour_onoff"])
def test_both_are_bundled_recorded_with_explore_and_calibrated(name: str) -> None:
    from autotune.envs.workload import list_bundled, load
    from autotune.trace.reader import load_trace

    assert name in list_bundled()
    assert (REPO / "envs" / "workloads" / f"{name}.calib.json").is_file()
    table, meta = load_trace(REPO / "envs" / "workloads" / f"{name}.parquet")
    assert meta["complete"] and meta["explore"] and meta["exit_status"] == 0
    assert catalog.get(name).module in meta["command"]
    assert table.num_rows > 100
    load(name)  # the replay's loader takes it, calibration and all
