"""The cgroup v2 weights backend on a real v2 cpu controller, inside the VM of scx/vm/cgroup2.sh.

Not a pytest module: PID 1 of that VM (scx/vm/cgroup2-init.sh) runs it with the project's own
Python, chrooted into the host's root (shared read-only over virtiofs), on a cgroup2 mount whose
root has the ``cpu`` controller, as systemd machines have it. tests/actuators/test_cgroup2_vm.py
boots the VM and checks what it printed.

A job in the shape systemd gives one (``training.slice/job.scope``, the slice passing ``cpu`` down):
a trainer shell and the loader shell it forked, two CPU-bound loops pinned to CPU 1. The service's
lookup finds the slice and the job in it; the registry picks ``cgroup2``; the backend's own
``set`` moves the roles into its cgroups and writes ``cpu.weight``, and the CPU-time ratio
trainer/loader (``/proc/PID/schedstat``, over MEASURE_S seconds of guest time) must follow the
weights. Then the journal is replayed as ``autotune restore`` does after a crash, and every cgroup
file under the mount must read as it did before. First, with ``cpu`` taken out of the root's
``cgroup.subtree_control``, the backend's first ``set`` must raise Stuck and the replay must leave
nothing; and a process in a cgroup without ``cpu.weight`` (its parent keeps the controller to
itself) must read its parent's weight. Last, the whole service on the slice: ``autotune tune
--follow --cgroup training.slice`` with a policy that always asks for 4x trainer and 1x loader
(and, as every constant policy, the other knobs at their defaults: every CPU for each role) finds
the job, moves it into its v2 role cgroups and widens its affinity, and SIGTERM puts both back and
leaves every cgroup file as before (its telemetry is /proc's: the VM has no kernel headers for
bcc). The CPU shares are measured in the phases before; here each loop has a CPU of its own.

Prints ``cgroup2-test:`` lines and one ``CGROUP2-TEST-RESULT PASS|FAIL name=value ...`` line,
then ends with status 0; any other status is a crash before that line (the init says so).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import autotune
from autotune.actuators import registry
from autotune.actuators.backend import Context, Stuck
from autotune.actuators.decisions import DecisionLog
from autotune.actuators.journal import Journal
from autotune.actuators.restore import restore_journal
from autotune.actuators.weights_cgroup import CgroupV2Weights
from autotune.config import Settings
from autotune.errors import UserError
from autotune.knobs import Family, readback
from autotune.service import slices
from autotune.system import cgroups
from autotune.target import Target, start_time

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, as its conftest does
from policy_kit import FAST_GUARD, write_constant_policy

MEASURE_S = float(os.environ.get("MEASURE_S", "4"))
SLICE = "training.slice"
# Trainer and loader: two shells spinning on CPU 1, the loader forked by the trainer.
JOB = 'sh -c "while :; do :; done" & while :; do :; done'
# The measured ratios trainer/loader and the ranges they must fall in: the weight ratio ±12 %,
# the tolerance scx/vm/init.sh gives its own (its runs stayed within 3 %).
EXPECTED = {
    "before": (1.0, 0.8, 1.25),  # both 1×: left where they were
    "w4_1": (4.0, 3.5, 4.5),  # trainer 4×, loader 1×: a cgroup per role
    "w05_2": (0.25, 0.22, 0.28),  # trainer 0.5×, loader 2×, written live
    "joint": (1.0, 0.8, 1.25),  # both 2×: the job together in one cgroup
    "restored": (1.0, 0.8, 1.25),  # after the journal's replay
}
# Guest seconds for the service to start (Python, torch and MLflow over virtiofs) and place the job.
SERVICE_TIMEOUT_S = float(os.environ.get("SERVICE_TIMEOUT_S", "240"))


class Failed(Exception):
    """A check that did not hold: the message is the FAIL line's."""


def say(line: str) -> None:
    print(f"cgroup2-test: {line}", flush=True)


def check(ok: bool, what: str) -> None:
    if not ok:
        raise Failed(what)


def cpu_ns(pid: int) -> int:
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def ratio(trainer: int, loader: int) -> float:
    """CPU time of the trainer over the loader's, over MEASURE_S seconds."""
    t0, l0 = cpu_ns(trainer), cpu_ns(loader)
    time.sleep(MEASURE_S)
    t1, l1 = cpu_ns(trainer), cpu_ns(loader)
    check(l1 > l0, "the loader got no CPU at all")
    return (t1 - t0) / (l1 - l0)


def snapshot(root: Path) -> dict[str, str]:
    """Every cgroup under ``root`` with what its control files that we write say."""
    out: dict[str, str] = {}
    for folder, _dirs, _files in os.walk(root):
        for name in ("cgroup.subtree_control", "cpu.weight"):
            f = Path(folder) / name
            if f.is_file():
                out[str(f.relative_to(root))] = f.read_text().strip()
    return out


class Run:
    """The measurements made so far, for the result line."""

    def __init__(self, trainer: int, loader: int) -> None:
        self.trainer, self.loader = trainer, loader
        self.results: dict[str, float] = {}

    def phase(self, name: str, detail: str) -> None:
        time.sleep(0.5)  # let the scheduler settle on the new weights
        want, lo, hi = EXPECTED[name]
        got = ratio(self.trainer, self.loader)
        self.results[name] = got
        say(f"{name}: trainer/loader {got:.3f} (weights {want:g}, expected {lo}..{hi}); {detail}")
        check(lo <= got <= hi, f"{name} = {got:.3f}, outside {lo}..{hi}")

    def line(self) -> str:
        return " ".join(f"{k}={v:.3f}" for k, v in self.results.items())


def start_job(scope: Path) -> int:
    """Start the job inside ``scope`` (it moves itself there before forking the loader); its PID.

    Started through a shell that exits at once, so that the job is not this process's child: the
    service takes its own descendants for its own, never for a job of the slice.
    """
    enter = 'echo $$ >"$1/cgroup.procs" && exec taskset -c 1 sh -c "$2"'
    launch = '"$0" -c "$1" job "$2" "$3" </dev/null >/dev/null 2>&1 & echo $!'
    r = subprocess.run(
        ["sh", "-c", launch, "sh", enter, str(scope), JOB],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return int(r.stdout)


def loader_of(target: Target) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = target.members()
        if m.loader_pids:
            return m.loader_pids[0]
        time.sleep(0.05)
    raise Failed("the trainer forked no loader within 30 s")


def weight(path: Path) -> int:
    return int((path / "cpu.weight").read_text())


@contextlib.contextmanager
def sleeper_in(root: Path, rel: str) -> Iterator[int]:
    """A sleeping process in the cgroup ``root/rel`` (made, and removed afterwards with the
    folders above it up to ``root``); yields its pid."""
    scope = root / rel
    scope.mkdir(parents=True)
    sleeper = subprocess.Popen(
        ["sh", "-c", 'echo $$ >"$1/cgroup.procs" && exec sleep 1000', "job", str(scope)]
    )
    try:
        while cgroups.cgroup_of(sleeper.pid, "") != f"/{rel}":
            check(sleeper.poll() is None, f"the sleeper could not enter {rel}")
            time.sleep(0.05)
        yield sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()
        for d in (Path(rel), *Path(rel).parents[:-1]):  # the scope, then its slices; not "."
            rmdir_soon(root / d)


def read_without_cpu(root: Path, mounts: cgroups.CgroupMounts) -> None:
    """A process in a cgroup whose parent keeps the cpu controller to itself (no cpu.weight, as
    in a systemd slice without CPUWeight=): its weight reads as its nearest ancestor's."""
    with sleeper_in(root, "plain.slice/job.scope") as pid:
        scope = root / "plain.slice" / "job.scope"
        check(not (scope / "cpu.weight").exists(), f"{scope} has a cpu.weight")
        got = [readback.cgroup_factor(pid, mounts)]
        (scope.parent / "cpu.weight").write_text("200")
        got.append(readback.cgroup_factor(pid, mounts))
        check(got == [1.0, 2.0], f"weights read {got} at plain.slice cpu.weight 100, 200")
        say("a cgroup without cpu.weight reads its parent's: 1.0 at 100, 2.0 at 200")


def stuck_without_cpu(root: Path, mounts: cgroups.CgroupMounts) -> None:
    """Where the root keeps the cpu controller to itself (no ``cpu`` in its
    ``cgroup.subtree_control``), the backend cannot make its cgroups: its first ``set`` raises
    Stuck (on which the actuators disable the weight knobs for the session), and the journal's
    replay removes what it made and leaves every cgroup file as it was."""
    top = root / "cgroup.subtree_control"
    check("cpu" in top.read_text().split(), f"the VM's init did not enable cpu in {top}")
    top.write_text("-cpu")
    try:
        with sleeper_in(root, "stuck.scope") as pid:
            before = snapshot(root)
            settings = Settings()
            session_id = f"{os.getpid()}-stuck"
            target = Target.from_pid(pid)
            journal = Journal(
                settings.journal, session_id, target.description, [(pid, start_time(pid))]
            )
            ctx = Context(mounts, settings.cgroup_parent, session_id, pid)
            backend, _ = registry.build(Family.WEIGHTS, journal, ctx)
            try:
                backend.set("weight.trainer", 2.0, target.members())
            except Stuck as e:
                say(f"without cpu in the root's subtree_control the first set is Stuck: {e}")
            else:
                raise Failed("set wrote weights without cpu in the root's subtree_control")
            report = restore_journal(settings.journal, DecisionLog(console=False), force=True)
            check(report.restored == [session_id], f"restore after Stuck: {report}")
            check(not settings.journal.exists(), "the journal is still there after the restore")
            left = root / settings.cgroup_parent
            check(not left.exists(), f"{left} is left after the restore")
            where = cgroups.cgroup_of(pid, "")
            check(where == "/stuck.scope", f"after the restore the job is in {where}")
            after = snapshot(root)
            changed = set(after.items()) ^ set(before.items())
            check(after == before, f"cgroup files changed: {changed}")
    finally:
        top.write_text("+cpu")


def rmdir_soon(d: Path) -> None:
    """Remove a cgroup, waiting a little for killed processes to leave it."""
    for _ in range(100):
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


def exercise(run_state: list[Run]) -> None:
    os.sched_setaffinity(0, {0})  # off CPU 1, where the loops are measured
    online = Path("/sys/devices/system/cpu/online").read_text().strip()
    check(online == "0-1", f"want CPUs 0-1 online, found {online}")
    mounts = cgroups.mounts()
    say(f"kernel {os.uname().release}; v2 at {mounts.v2} with {' '.join(mounts.v2_controllers)}")
    root = mounts.v2
    if root is None or "cpu" not in mounts.v2_controllers:
        raise Failed("no cgroup v2 mount with the cpu controller")
    check(not mounts.v1, f"v1 hierarchies are mounted: {mounts.v1}")
    cls, choice = registry.choose(Family.WEIGHTS, mounts)
    say(f"weights backend chosen: {choice.backend} ({choice.reason})")
    check(cls is CgroupV2Weights, f"the registry chose {choice.backend}, not cgroup2")
    stuck_without_cpu(root, mounts)
    read_without_cpu(root, mounts)

    # The slice, as systemd makes one: the cpu controller passed down to its units.
    (root / SLICE).mkdir()
    (root / SLICE / "cgroup.subtree_control").write_text("+cpu")
    scope = root / SLICE / "job.scope"
    scope.mkdir()
    before = snapshot(root)
    trainer = start_job(scope)
    target = Target.from_pid(trainer)
    loader = loader_of(target)
    run = Run(trainer, loader)
    run_state.append(run)
    rel = f"/{SLICE}/job.scope"
    check(
        cgroups.cgroup_of(trainer, "") == rel and cgroups.cgroup_of(loader, "") == rel,
        f"the job is not in {rel}",
    )

    # The service's view of the slice: found by name under v2, the job found in it.
    found = slices.resolve(SLICE)
    check(found == root / SLICE, f"slices.resolve({SLICE!r}) = {found}, not {root / SLICE}")
    inside = slices.pids(found) or set()
    jobs = slices.new_jobs(inside, set(), {os.getpid()})
    check(jobs == [(trainer, start_time(trainer))], f"jobs in the slice: {jobs}")
    say(f"the service finds {found} and its one job, pid {trainer} (loader {loader})")
    try:
        slices.resolve("no-such.slice")
        raise Failed("slices.resolve found no-such.slice")
    except UserError as e:
        want = f"no cgroup named no-such.slice under {root}"
        check(str(e) == want, f"slices.resolve said {e!r}, not {want!r}")
    run.phase("before", "both in job.scope")

    settings = Settings()  # the journal and cgroup parent from AUTOTUNE_* (set by the VM's init)
    session_id = f"{os.getpid()}-vm"
    journal = Journal(
        settings.journal, session_id, target.description, [(trainer, start_time(trainer))]
    )
    ctx = Context(mounts, settings.cgroup_parent, session_id, trainer)
    backend, _ = registry.build(Family.WEIGHTS, journal, ctx)
    check(isinstance(backend, CgroupV2Weights), f"built {type(backend).__name__}")
    session = root / settings.cgroup_parent / session_id

    m = target.members()
    read = backend.read(m)
    check(read == {"weight.trainer": 1.0, "weight.loader": 1.0}, f"read back {read} at first")
    say(backend.set("weight.trainer", 4.0, m))
    ours = f"/{settings.cgroup_parent}/{session_id}"
    check(settings.journal.is_file(), f"no journal at {settings.journal} after the first write")
    check(cgroups.cgroup_of(trainer, "") == f"{ours}/trainer", "the trainer was not moved")
    check(cgroups.cgroup_of(loader, "") == f"{ours}/loader", "the loader was not moved")
    got = (weight(session / "trainer"), weight(session / "loader"), weight(session))
    check(got == (400, 100, 500), f"cpu.weight trainer, loader, session = {got}")
    read = backend.read(target.members())
    check(read == {"weight.trainer": 4.0, "weight.loader": 1.0}, f"read back {read}")
    run.phase("w4_1", f"cpu.weight trainer {got[0]}, loader {got[1]}")

    m = target.members()
    backend.set("weight.trainer", 0.5, m)
    say(backend.set("weight.loader", 2.0, m))
    got = (weight(session / "trainer"), weight(session / "loader"))
    check(got == (50, 200), f"cpu.weight trainer, loader = {got}")
    run.phase("w05_2", f"cpu.weight trainer {got[0]}, loader {got[1]}")

    say(backend.set("weight.trainer", 2.0, target.members()))
    check(
        {cgroups.cgroup_of(p, "") for p in (trainer, loader)} == {f"{ours}/job"},
        "equal weights did not put the job together",
    )
    check(weight(session / "job") == 400, f"cpu.weight job = {weight(session / 'job')}")
    read = backend.read(target.members())
    check(read == {"weight.trainer": 2.0, "weight.loader": 2.0}, f"read back {read}")
    run.phase("joint", "cpu.weight job 400 (2× for each of its two processes)")

    # As after a crash: `autotune restore` replays the journal on disk.
    report = restore_journal(settings.journal, DecisionLog(console=False), force=True)
    check(report.restored == [session_id], f"restore: {report}")
    check(not settings.journal.exists(), "the journal is still there after the restore")
    check(not (root / settings.cgroup_parent).exists(), f"{root / settings.cgroup_parent} is left")
    where = {cgroups.cgroup_of(p, "") for p in (trainer, loader)}
    check(where == {rel}, f"after the restore the job is in {where}, not {rel}")
    after = snapshot(root)
    check(after == before, f"cgroup files changed: {set(after.items()) ^ set(before.items())}")
    say(f"restored: the job back in {rel}, {root / settings.cgroup_parent} removed, journal gone")
    run.phase("restored", "both back in job.scope")
    service_loop(root, run, before)


def service_loop(root: Path, run: Run, before: dict[str, str]) -> None:
    """The node service on the slice, as systemd would run it: it finds the job, warms up, moves
    each role into its own v2 cgroup at the policy's weights and sets the policy's CPUs, and
    SIGTERM restores everything."""
    settings = Settings()
    policy = write_constant_policy(
        Path("/run/policy"), {"weight.trainer": 4.0, "weight.loader": 1.0}
    )
    env = {
        **os.environ,
        "AUTOTUNE_RUNS_DIR": "/run/runs",
        "AUTOTUNE_TRACKING_URI": "sqlite:////run/runs/mlflow.db",
        "AUTOTUNE_STATE_DIR": "/run/autotune-service",
        **FAST_GUARD,  # as the host's service tests
    }
    cmd = [sys.executable, "-m", "autotune.cli.main", "tune", "--follow", "--no-view"]
    cmd += ["--model", str(policy), "--cgroup", SLICE, "--interval", "200"]
    err = Path("/run/service.err")
    jobs = (run.trainer, run.loader)
    pinned = [os.sched_getaffinity(p) for p in jobs]
    with err.open("w") as f:
        svc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=f)
    ours = f"/{settings.cgroup_parent}/"
    t0 = time.monotonic()
    try:
        while True:
            where = [cgroups.cgroup_of(p, "") or "" for p in jobs]
            trainer_home = where[0].removesuffix("/trainer")
            placed = where[0].startswith(ours) and where[1] == f"{trainer_home}/loader" != where[0]
            if placed and all(os.sched_getaffinity(p) == {0, 1} for p in jobs):
                break
            if svc.poll() is not None:
                raise Failed(f"the service ended with {svc.returncode}: {tail(err)}")
            if time.monotonic() - t0 > SERVICE_TIMEOUT_S:
                raise Failed(f"the job is in {where} after {SERVICE_TIMEOUT_S:g} s: {tail(err)}")
            time.sleep(0.2)
        session = root / trainer_home.strip("/")
        got = (weight(session / "trainer"), weight(session / "loader"))
        check(got == (400, 100), f"the service wrote cpu.weight trainer, loader = {got}")
        say(
            f"the service tuned the job after {time.monotonic() - t0:.1f} s: cpu.weight trainer"
            f" {got[0]}, loader {got[1]} in {session}, both on CPUs 0-1"
        )
    finally:
        if svc.poll() is None:
            svc.send_signal(signal.SIGTERM)
        try:
            code = svc.wait(60)
        except subprocess.TimeoutExpired:
            svc.kill()
            raise Failed(f"the service did not end within 60 s of SIGTERM: {tail(err)}") from None
        for line in err.read_text(errors="replace").splitlines():
            if line.startswith("autotune: job "):
                say(f"service: {line.removeprefix('autotune: ')}"[:200])
    check(code == 0, f"the service ended with {code} on SIGTERM: {tail(err)}")
    rel = f"/{SLICE}/job.scope"
    where = [cgroups.cgroup_of(p, "") for p in jobs]
    check(where == [rel, rel], f"after the service the job is in {where}, not {rel}")
    now = [os.sched_getaffinity(p) for p in jobs]
    check(now == pinned, f"after the service the job's CPUs are {now}, not {pinned}")
    check(not (root / settings.cgroup_parent).exists(), "the service left its cgroups")
    after = snapshot(root)
    check(after == before, f"cgroup files changed: {set(after.items()) ^ set(before.items())}")
    telemetry = "/proc" if "using /proc" in err.read_text() else "BPF"
    say(f"SIGTERM: the service put the job back in {rel} on CPU 1 ({telemetry} telemetry)")


def tail(path: Path) -> str:
    """The last lines of a log, on one line."""
    lines = path.read_text(errors="replace").strip().splitlines()
    return " | ".join(lines[-3:]) or "(nothing on stderr)"


def stop(run_state: list[Run]) -> None:
    """Kill the loops and remove the slice (the VM powers off after, but a check is a check)."""
    for run in run_state:
        for pid in (run.loader, run.trainer):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    root = cgroups.mounts().v2
    if root is not None:
        for d in (root / SLICE / "job.scope", root / SLICE):
            rmdir_soon(d)


def main() -> int:
    t0 = time.monotonic()
    say(f"autotune from {Path(autotune.__file__).parent}, Python {sys.version.split()[0]}")
    run_state: list[Run] = []
    try:
        exercise(run_state)
    except Exception as e:  # a failed check or anything else: one FAIL line, never a traceback
        results = run_state[0].line() if run_state else ""
        why = " ".join(str(e).split())  # one line, whatever the message
        print(f"CGROUP2-TEST-RESULT FAIL {type(e).__name__}: {why} {results}".rstrip(), flush=True)
        return 0
    finally:
        stop(run_state)
    root = cgroups.mounts().v2
    left = sorted(p.name for p in root.iterdir() if p.is_dir()) if root else []
    if left:
        print(f"CGROUP2-TEST-RESULT FAIL cgroups left under {root}: {left}", flush=True)
        return 0
    say(f"test took {time.monotonic() - t0:.1f} s of guest time")
    print(f"CGROUP2-TEST-RESULT PASS {run_state[0].line()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
