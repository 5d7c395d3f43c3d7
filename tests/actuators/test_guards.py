"""Guards: bounds refuse off-ladder values before any write; a dry run writes nothing; the
journal and the decision log keep their contracts."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from actuator_kit import Job, Loop, cpu_cgroup, online, role_cpus

from autotune.actuators import Actuators, Decision, DecisionLog, journal
from autotune.actuators.readahead import ReadaheadEntry
from autotune.actuators.restore import restore_journal
from autotune.config import Settings
from autotune.errors import UserError
from autotune.knobs import KnobRangeError
from autotune.knobs.readback import read_knobs
from autotune.system import cgroups


@pytest.mark.root
def test_off_ladder_values_are_refused_and_nothing_is_written(
    loop: Loop, spawn: Callable[..., Job], settings: Settings
) -> None:
    job = spawn("--loaders", "1", "--open", str(loop.data))
    before = read_knobs(job.target, devices=[loop.name])
    with Actuators(job.target, settings, log=DecisionLog(console=False)) as act:
        with pytest.raises(KnobRangeError, match=r"readahead=100 is not allowed; choose one of 16"):
            # One bad value in an action: none of it is written, not even the good ones.
            act.apply({"weight.trainer": 4.0, "readahead": 100.0})
        with pytest.raises(KnobRangeError, match=r"weight\.loader=16 is not allowed"):
            act.apply({"weight.loader": 16})
        with pytest.raises(UserError, match=r"unknown knob 'cpus\.other'"):
            act.apply({"cpus.other": 0.5})
        assert read_knobs(job.target, devices=[loop.name]) == before
        assert not settings.journal.exists()


@pytest.mark.root
def test_dry_run_logs_every_decision_and_writes_nothing(
    loop: Loop, spawn: Callable[..., Job], settings: Settings, tmp_path: Path
) -> None:
    job = spawn("--loaders", "2", "--open", str(loop.data))
    origin = cpu_cgroup(job.proc.pid)
    cpus_before = role_cpus(job.target)
    log_path = tmp_path / "advice.jsonl"
    action = {
        "weight.trainer": 8.0,
        "weight.loader": 0.25,
        "cpus.trainer": 0.25,
        "cpus.loader": 0.25,
        "readahead": 16.0,
    }
    with Actuators(
        job.target, settings, dry_run=True, log=DecisionLog(log_path, console=False)
    ) as act:
        act.apply(action, reason="advice")
        act.follow()
        assert loop.read_ahead_kb() == loop.original_ra
        assert {cpu_cgroup(p) for p in job.target.members().all_pids} == {origin}
        assert role_cpus(job.target) == cpus_before
        assert {os.getpriority(os.PRIO_PROCESS, t) for t in job.target.members().trainer_tids} == {
            0
        }
        assert not settings.journal.exists()
    lines = DecisionLog.read(log_path)
    assert {d["knob"]: d["new"] for d in lines} == action
    assert all(d["dry_run"] and d["reason"] == "advice" for d in lines)


def test_journal_keeps_sessions_apart_and_removes_itself(tmp_path: Path) -> None:
    path = tmp_path / "state" / "journal.json"
    a = journal.Journal(path, "a", "job a", [(1, 1)])
    b = journal.Journal(path, "b", "job b", [(2, 2)])
    a.put("readahead:loop9", ReadaheadEntry(device="loop9", path="/dev/null", original=128))
    a.flush()
    b.wrote("readahead", 512)
    b.flush()
    on_disk = journal.read(path)
    assert set(on_disk) == {"a", "b"}
    assert on_disk["a"]["entries"]["readahead:loop9"]["original"] == 128
    assert on_disk["b"]["written"] == {"readahead": [512]}
    assert journal.owner_alive(on_disk["a"])  # written by this very process
    assert [p.name for p in path.parent.iterdir()] == ["journal.json"]  # no temporary left
    a.drop()
    assert set(journal.read(path)) == {"b"}
    b.drop()
    assert not path.exists()


@pytest.mark.parametrize(
    ("text", "why"),
    [("{", "not valid JSON"), ('{"version": 9}', "not an autotune journal"),
     ('{"version": 1, "sessions": []}', "no valid 'sessions'")],
)  # fmt: skip
def test_a_broken_journal_is_a_clear_error(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(text)
    with pytest.raises(UserError, match=why):
        journal.read(path)


def test_decision_log_lines_jsonl_and_listeners(tmp_path: Path) -> None:
    seen: list[Decision] = []
    path = tmp_path / "decisions.jsonl"
    with DecisionLog(path, console=False) as log:
        log.add_listener(seen.append)
        d = log.record(Decision("readahead", "trainer", 128, 1024, "explore", detail="loop3"))
        log.remove_listener(seen.append)
        log.record(Decision("readahead", "trainer", 1024, 128, "back"))
    assert d.line() == "readahead trainer 128 → 1024  explore [loop3]"
    assert seen == [d]  # not called once removed
    (row, _) = (json.loads(x) for x in path.read_text().splitlines())
    assert row["knob"] == "readahead" and row["old"] == 128 and row["new"] == 1024
    assert row["event"] == "set" and row["dry_run"] is False


@pytest.mark.root
def test_a_write_the_kernel_refuses_disables_the_knob(
    spawn: Callable[..., Job], settings: Settings, tmp_path: Path
) -> None:
    mount = cgroups.mounts().v1.get("cpuset")
    if mount is None or len(online()) < 2:
        pytest.skip("needs a cgroup v1 cpuset hierarchy and two CPUs")
    job = spawn("--loaders", "1")
    loader = job.target.members().loader_pids[0]
    # Someone confines the loader to the first CPU with a cpuset after the session started: the
    # kernel then refuses the loaders' CPUs (the high end), and the knob must be given up.
    fence = mount / f"{settings.cgroup_parent}-fence"
    fence.mkdir()
    try:
        (fence / "cpuset.cpus").write_text(str(min(online())))
        (fence / "cpuset.mems").write_text((mount / "cpuset.mems").read_text().strip())
        log_path = tmp_path / "decisions.jsonl"
        with Actuators(job.target, settings, log=DecisionLog(log_path, console=False)) as act:
            (fence / "cgroup.procs").write_text(str(loader))
            act.apply({"cpus.loader": 0.5, "cpus.trainer": 0.5})
            assert "cannot set thread" in act.disabled["cpus.loader"]
            assert "cpus.trainer" not in act.disabled  # the other knob is unaffected
        stuck = [d for d in DecisionLog.read(log_path) if d["event"] == "stuck"]
        assert [d["knob"] for d in stuck] == ["cpus.loader"]
    finally:
        root_procs = mount / "cgroup.procs"
        for pid in (fence / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                root_procs.write_text(pid)
        fence.rmdir()


@pytest.mark.root
def test_a_cgroup_removed_under_us_disables_the_weight(
    spawn: Callable[..., Job], settings: Settings
) -> None:
    mount = cgroups.mounts().v1.get("cpu")
    if mount is None:
        pytest.skip("no cgroup v1 cpu hierarchy")
    job = spawn("--loaders", "1")
    with Actuators(job.target, settings, log=DecisionLog(console=False)) as act:
        act.apply({"weight.trainer": 2.0, "weight.loader": 4.0})  # a cgroup per role
        ours = mount / settings.cgroup_parent / act.session_id / "trainer"
        (mount / "cgroup.procs").write_text(str(job.proc.pid))  # someone takes the trainer out
        ours.rmdir()  # and removes our cgroup
        act.apply({"weight.trainer": 8.0})  # still its own cgroup's, which is gone
        assert "is gone" in act.disabled["weight.trainer"]
        assert act.apply({"weight.loader": 8.0})["weight.loader"] == 8.0
    assert cpu_cgroup(job.proc.pid) == "/"


def test_an_entry_nobody_can_restore_keeps_its_session(tmp_path: Path) -> None:
    path = tmp_path / "crashed.json"
    j = journal.Journal(path, "dead", "a job", [])
    j.record.owner = journal.Owner(pid=0, start=None)  # no such tuner: it crashed
    j.put("x", journal.JournalEntry(kind="from-a-newer-autotune"))
    j.flush()
    report = restore_journal(path, DecisionLog(console=False))
    assert report.incomplete == ["dead"]
    assert "no restorer" in report.decisions[0].reason
    assert set(journal.read(path)) == {"dead"}  # kept for a restore that knows the kind
    path.unlink()
