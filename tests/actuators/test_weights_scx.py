"""The sched_ext weights backend: real maps, real jobs, real journal, on a kernel without sched_ext.

See scx_kit.py for what runs for real here and for the one double (the scheduler being attached).
The scheduler itself, attached and scheduling, is tested in a VM: tests/scx/test_scx_vm.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from actuator_kit import Job, cpu_cgroup
from scx_kit import attached_double, build, loader

from autotune.actuators import registry
from autotune.actuators.backend import Backend, Context
from autotune.actuators.decisions import LEFT, RESTORE
from autotune.actuators.journal import Journal
from autotune.actuators.restore import replay_record
from autotune.actuators.weights_scx import ScxWeights
from autotune.config import Settings
from autotune.knobs import Family
from autotune.knobs.table import KnobRangeError
from autotune.scx import maps as scx_maps
from autotune.scx import scheduler as scx
from autotune.system import cgroups, kernel
from autotune.target import start_time

SESSION = Path(__file__).with_name("scx_session.py")
no_sched_ext = pytest.mark.skipif(
    kernel.sched_ext().supported, reason="this kernel has sched_ext: the refusal path is not taken"
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scheduler and its loader, built against the sched_ext kernel's BTF."""
    out = tmp_path_factory.mktemp("scx-build")
    r = build(out)
    if isinstance(r, str):
        pytest.skip(f"the sched_ext kernel cannot be downloaded here: {r}")
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture
def pin_dir(built: Path, tmp_path: Path) -> Iterator[Path]:
    """The scheduler's maps, created from its object and pinned on a private bpffs mount."""
    mnt = tmp_path / "bpffs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "bpf", "bpf", str(mnt)], check=True)
    try:
        pins = mnt / "autotune"
        r = loader(built, "maps", str(built / "scx_autotune.bpf.o"), str(pins))
        assert r.returncode == 0, r.stderr
        yield pins
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    assert not os.path.ismount(mnt)


def _family(settings: Settings, job: Job, pins: Path, **kw: object) -> ScxWeights:
    roots = [(p, start_time(p)) for p in job.target.roots]
    journal = Journal(settings.journal, "test-scx", job.target.description, roots)
    ctx = Context(cgroups.mounts(), settings.cgroup_parent, "test-scx", job.target.pid)

    def fallback() -> Backend:  # what the registry hands the backend: its next choice
        return registry.build(Family.WEIGHTS, journal, ctx, exclude=("sched_ext",))[0]

    return ScxWeights(journal, ctx, pins, fallback=fallback, **kw)  # type: ignore[arg-type]


# --- without sched_ext (this kernel) ----------------------------------------------------------


@no_sched_ext
def test_load_without_sched_ext_says_why_and_which_backend(
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    r = run_cli("scx", "load")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert "no sched_ext" in lines[0]
    weights = registry.choose(Family.WEIGHTS)[1].backend
    assert weights in lines[0]  # the backend the weights use instead


@no_sched_ext
def test_without_our_scheduler_weights_use_cgroups_and_say_why() -> None:
    _, choice = registry.choose(Family.WEIGHTS)
    assert choice.backend in {"cgroup1", "cgroup2", "nice"}
    st = scx.status()
    assert not st.loaded and st.reason.startswith("no sched_ext")


@no_sched_ext
def test_doctor_reports_sched_ext_and_our_scheduler(
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    r = run_cli("doctor", "--json")
    check = json.loads(r.stdout)["checks"]["sched_ext"]
    assert check["ok"] is False
    assert "our scheduler cannot load" in check["reason"]
    assert check["data"]["scheduler"]["loaded"] is False
    assert check["data"]["scheduler"]["why_not"].startswith("no sched_ext")


# --- the maps, for real -----------------------------------------------------------------------


@pytest.mark.root
@pytest.mark.bpf
def test_python_and_the_loader_agree_on_the_map_layouts(built: Path, pin_dir: Path) -> None:
    with scx_maps.SchedulerMaps(pin_dir) as maps:
        maps.set_weight(3, 300, 5000)
        maps.add_member(scx_maps.MEMBER_TGID, 123456, 3)
        maps.add_member(scx_maps.MEMBER_CGROUP, 1 << 40, 4)
        shown = loader(built, "show", str(pin_dir)).stdout.splitlines()
        assert "weight role=3 weight=300 slice_us=5000" in shown
        assert "member tgid=123456 role=3" in shown
        assert f"member cgroup={1 << 40} role=4" in shown
        assert loader(built, "weight", str(pin_dir), "5", "250").returncode == 0
        assert maps.weight(5) == (250, 0)
        assert maps.free_groups(2) == [0, 1]
        assert maps.exit_reason() is None  # the scheduler never ran, so never exited
        with pytest.raises(ValueError):
            maps.set_weight(0, 0)  # below sched_ext's weight range


@pytest.mark.root
@pytest.mark.bpf
def test_weights_go_into_the_map_follow_new_processes_and_restore_unloads(
    pin_dir: Path, spawn: Callable[..., Job], settings: Settings
) -> None:
    job = spawn("--loaders", "2")
    fam = _family(settings, job, pin_dir, status=attached_double)
    m = job.target.members()
    detail = fam.set("weight.trainer", 4.0, m)
    fam.set("weight.loader", 0.5, m)
    assert "sched_ext weight 400" in detail
    # Journalled on disk, with the pins and every process put in a group.
    entry = json.loads(settings.journal.read_text())["sessions"]["test-scx"]["entries"]["sched_ext"]
    assert entry["pin_dir"] == str(pin_dir)
    assert set(entry["members"]) == {str(p) for p in m.all_pids}
    with scx_maps.SchedulerMaps(pin_dir) as maps:
        g_trainer, g_loader = fam.groups.values()
        assert maps.weight(g_trainer) == (400, 0) and maps.weight(g_loader) == (50, 0)
        for pid in m.trainer_pids:
            assert maps.member(scx_maps.MEMBER_TGID, pid) == g_trainer
        for pid in m.loader_pids:
            assert maps.member(scx_maps.MEMBER_TGID, pid) == g_loader
        job.send("fork")
        new = set(job.target.members().loader_pids) - set(m.loader_pids)
        assert len(new) == 1
        assert fam.follow(job.target.members()) == []
        assert maps.member(scx_maps.MEMBER_TGID, new.pop()) == g_loader

    decisions = replay_record(fam.journal.record)
    assert {d.event for d in decisions} == {RESTORE}
    assert any("scheduler unloaded" in d.detail for d in decisions)
    assert not (pin_dir / "weights").exists() and not pin_dir.exists()
    fam.journal.drop()


@pytest.mark.root
@pytest.mark.bpf
def test_off_ladder_weight_is_refused_before_the_map(
    pin_dir: Path, spawn: Callable[..., Job], settings: Settings
) -> None:
    job = spawn()
    fam = _family(settings, job, pin_dir, status=attached_double)
    with pytest.raises(KnobRangeError):
        fam.set("weight.trainer", 3.0, job.target.members())
    with pytest.raises(KnobRangeError):
        fam.set("weight.loader", 16.0, job.target.members())
    with scx_maps.SchedulerMaps(pin_dir) as maps:
        assert maps.groups() == {} and maps.members() == {}
    assert not settings.journal.exists()


@pytest.mark.root
@pytest.mark.bpf
def test_a_group_rewritten_behind_our_back_is_yielded_and_left(
    pin_dir: Path, spawn: Callable[..., Job], settings: Settings
) -> None:
    job = spawn()
    fam = _family(settings, job, pin_dir, status=attached_double)
    fam.set("weight.trainer", 2.0, job.target.members())
    group = fam.groups[next(iter(fam.groups))]
    with scx_maps.SchedulerMaps(pin_dir) as maps:
        maps.set_weight(group, 123)
    notices = fam.follow(job.target.members())
    assert [(n.knob, n.event, n.found) for n in notices] == [("weight.trainer", "yield", 1.23)]
    decisions = replay_record(fam.journal.record)
    assert [d.event for d in decisions if d.knob == "weight.trainer"] == [LEFT]
    assert (pin_dir / "weights").exists()  # someone still uses the scheduler: not unloaded
    fam.journal.drop()


class _Ejectable:
    """Test double: the scheduler is attached until :attr:`ejected` is set (its watchdog)."""

    def __init__(self) -> None:
        self.ejected = False

    def __call__(self, pin_dir: Path) -> scx.Status:
        if self.ejected:
            return scx.Status(True, "disabled", None, True, False, "our scheduler stopped: stall")
        return attached_double(pin_dir)


@pytest.mark.root
@pytest.mark.bpf
def test_an_ejected_scheduler_falls_back_to_cgroups(
    pin_dir: Path, spawn: Callable[..., Job], settings: Settings
) -> None:
    if "cpu" not in cgroups.mounts().v1 and "cpu" not in cgroups.mounts().v2_controllers:
        pytest.skip("no cpu cgroup controller to fall back to")
    job = spawn("--loaders", "1")
    status = _Ejectable()
    fam = _family(settings, job, pin_dir, status=status)
    fam.set("weight.trainer", 4.0, job.target.members())
    status.ejected = True
    detail = fam.set("weight.loader", 2.0, job.target.members())
    assert "sched_ext scheduler stopped" in detail
    # The trainer's 4× carried over into a real cgroup of the session.
    trainer_cg = cpu_cgroup(job.target.pid) or ""
    assert settings.cgroup_parent in trainer_cg
    decisions = replay_record(fam.journal.record)
    assert "failed" not in {d.event for d in decisions}
    assert settings.cgroup_parent not in (cpu_cgroup(job.target.pid) or "")
    assert not pin_dir.exists()  # the stopped scheduler's pins went too
    fam.journal.drop()


@pytest.mark.root
@pytest.mark.bpf
def test_a_killed_tuner_is_restored_by_autotune_restore(
    pin_dir: Path,
    spawn: Callable[..., Job],
    settings: Settings,
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    job = spawn("--loaders", "1")
    tuner = subprocess.Popen(
        [
            sys.executable,
            str(SESSION),
            str(pin_dir),
            str(settings.journal),
            str(job.target.pid),
            settings.cgroup_parent,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=SESSION.parent,
    )
    try:
        assert tuner.stdout is not None and tuner.stdout.readline().strip() == "ready"
        with scx_maps.SchedulerMaps(pin_dir) as maps:
            assert sorted(w for w, _ in maps.groups().values()) == [50, 400]
    finally:
        tuner.send_signal(signal.SIGKILL)
        tuner.wait(timeout=30)
    assert (pin_dir / "weights").exists()  # left pinned by the killed tuner
    r = run_cli("restore", "--journal", str(settings.journal))
    assert r.returncode == 0, r.stderr
    assert "restored session scx-crash" in r.stdout
    assert not pin_dir.exists()  # the scheduler is unloaded: its pins are gone
    assert not settings.journal.exists()
