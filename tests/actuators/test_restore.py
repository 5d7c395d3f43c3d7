"""Crash safety with real processes: kill -9 of a tuner then `autotune restore`, SIGTERM,
a target that exits mid-action, and a journal in use or broken."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from actuator_kit import TUNER, Job, Loop, cpu_cgroup, online, role_cpus

from autotune.actuators import Actuators, DecisionLog
from autotune.config import Settings
from autotune.system import cgroups

pytestmark = pytest.mark.root

ACTION = {
    "weight.trainer": 4.0,
    "weight.loader": 2.0,
    "cpus.trainer": 0.5,
    "cpus.loader": 0.5,
    "readahead": 2048.0,
}


@pytest.fixture
def tuners() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start real tuner processes (tests/actuators/tuner.py); killed at the end."""
    procs: list[subprocess.Popen[str]] = []

    def start(job: Job, settings: Settings, *extra: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, str(TUNER), str(job.proc.pid), str(settings.journal),
             settings.cgroup_parent, json.dumps(ACTION), *extra],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        procs.append(proc)
        return proc

    try:
        yield start
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _applied(tuner: subprocess.Popen[str]) -> dict[str, dict[str, object]]:
    assert tuner.stdout is not None
    line = tuner.stdout.readline()
    assert line, "the tuner died before applying"
    state: dict[str, dict[str, object]] = json.loads(line)
    return state


def _session_cgroups(settings: Settings) -> Path:
    mount = cgroups.mounts().v1.get("cpu")
    assert mount is not None
    return mount / settings.cgroup_parent


def _assert_as_before(job: Job, loop: Loop, settings: Settings, origin: str | None) -> None:
    trainer, loader = role_cpus(job.target)
    assert all(c == online() for c in trainer + loader)
    assert {cpu_cgroup(p) for p in job.target.members().all_pids} == {origin}
    assert not _session_cgroups(settings).exists()
    assert loop.read_ahead_kb() == loop.original_ra


@pytest.mark.parametrize("weights", ["cgroup1", "nice"])
def test_kill_9_then_restore_brings_every_knob_back(
    weights: str,
    *,
    loop: Loop,
    spawn: Callable[..., Job],
    settings: Settings,
    tuners: Callable[..., subprocess.Popen[str]],
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    if weights == "cgroup1" and "cpu" not in cgroups.mounts().v1:
        pytest.skip("no cgroup v1 cpu hierarchy")
    job = spawn("--loaders", "2", "--open", str(loop.data))
    origin = cpu_cgroup(job.proc.pid)
    tuner = tuners(job, settings, "--weights", weights)
    state = _applied(tuner)
    assert state["current"]["readahead"] == 2048
    assert loop.read_ahead_kb() == 2048
    if weights == "cgroup1":
        assert _session_cgroups(settings).is_dir()
    tuner.kill()  # SIGKILL: no handler runs, the journal stays
    tuner.wait()
    job.send("fork")  # a loader born after the crash, in the tuner's cgroup and CPUs
    assert settings.journal.exists()
    assert loop.read_ahead_kb() == 2048

    first = run_cli("restore", "--journal", str(settings.journal))
    assert first.returncode == 0, first.stderr
    assert "restored session" in first.stdout
    assert "readahead" in first.stderr  # the decision lines
    _assert_as_before(job, loop, settings, origin)
    if weights == "nice":
        import os

        assert {os.getpriority(os.PRIO_PROCESS, t) for t in job.target.members().trainer_tids} == {
            0
        }
    assert not settings.journal.exists()

    second = run_cli("restore", "--journal", str(settings.journal))
    assert second.returncode == 0
    assert "nothing to restore" in second.stdout
    _assert_as_before(job, loop, settings, origin)


def test_sigterm_restores_on_the_way_out(
    loop: Loop,
    spawn: Callable[..., Job],
    settings: Settings,
    tuners: Callable[..., subprocess.Popen[str]],
) -> None:
    job = spawn("--loaders", "1", "--open", str(loop.data))
    origin = cpu_cgroup(job.proc.pid)
    tuner = tuners(job, settings)
    _applied(tuner)
    assert loop.read_ahead_kb() == 2048
    tuner.send_signal(signal.SIGTERM)
    assert tuner.wait(timeout=30) == 128 + signal.SIGTERM
    _assert_as_before(job, loop, settings, origin)
    assert not settings.journal.exists()


def test_restore_leaves_a_running_tuner_alone(
    loop: Loop,
    spawn: Callable[..., Job],
    settings: Settings,
    tuners: Callable[..., subprocess.Popen[str]],
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    job = spawn("--loaders", "1", "--open", str(loop.data))
    tuner = tuners(job, settings)
    _applied(tuner)
    r = run_cli("restore", "--journal", str(settings.journal))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "still runs" in r.stderr
    assert loop.read_ahead_kb() == 2048  # untouched: its tuner restores it
    tuner.send_signal(signal.SIGTERM)
    tuner.wait(timeout=30)
    assert loop.read_ahead_kb() == loop.original_ra


def test_broken_journal_is_one_line_and_status_2(
    tmp_path: Path, run_cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = run_cli("restore", "--journal", str(bad))
    assert r.returncode == 2
    assert r.stderr.startswith("autotune: journal") and r.stderr.count("\n") == 1
    bad.unlink()


def test_target_exiting_mid_action_restores_and_never_raises(
    loop: Loop, spawn: Callable[..., Job], settings: Settings
) -> None:
    job = spawn("--loaders", "4", "--open", str(loop.data))
    ladder = [0.25, 0.5, 1.0, 2.0]
    with Actuators(job.target, settings, log=DecisionLog(console=False)) as act:
        act.apply({"readahead": 256.0})
        killer = threading.Timer(0.05, job.kill)  # dies while we keep acting on it
        killer.start()
        i = 0
        while not act.target_exited and i < 100_000:
            v = ladder[i % len(ladder)]
            act.apply({"weight.trainer": v, "weight.loader": v, "cpus.loader": min(v, 1.0)})
            act.follow()
            i += 1
        killer.join()
        assert act.target_exited
        assert act.apply({"readahead": 16.0}) == {}  # after the end: nothing, no error
    assert loop.read_ahead_kb() == loop.original_ra
    assert not _session_cgroups(settings).exists()
    assert not settings.journal.exists()
