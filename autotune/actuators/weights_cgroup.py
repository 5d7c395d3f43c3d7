"""CPU weight per role: cgroup v2 ``cpu.weight``, cgroup v1 ``cpu.shares``, or nice values.

**cgroups.** The tuner makes its own tree under the controller's mount::

    <mount>/<cgroup_parent>/<session>/{trainer,loader,job}

While both multipliers are 1× the job stays where it was. While they are equal, all of the job's
processes are in ``job``; while they differ, each role's are in its own cgroup (new children
follow, on each follow). A cgroup's weight is ``multiplier × default × its processes``: a role of
four loader processes competes as the four tasks did before it was moved (threads of one process
count once: intra-op pools run in bursts). Splitting the roles has a price of its own, which is
why equal multipliers keep the job together: on the cnn job (one trainer with two busy intra-op
threads, two loaders) role cgroups at equal weights gave the trainer a third of the CPU where it
had half in place, and the job ran 11 % slower (measured with workloads.run). Above them
each cgroup's weight is the sum of its children's, so the job as a whole competes with the rest
of the node with the weight its parts add up to. When the session ends every task goes back
where it came from and the tree is removed.

**nice.** Without a cpu controller, each thread of a role gets the nice value whose CFS weight is
nearest the multiplier (:func:`~autotune.knobs.readback.nice_for_factor`), per thread, followed
like affinity.

**sched_ext** weights (a pinned BPF map) are another module's; :func:`build` finds it through
:data:`autotune.actuators.backends.WEIGHTS_IMPL` and falls back to cgroups when it is absent.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotune.actuators import backends
from autotune.actuators.decisions import FAILED, RESTORE, Decision
from autotune.actuators.family import Family, Notice, Stuck, write_int
from autotune.actuators.journal import Entry, Journal, Session
from autotune.actuators.threads import PerThread, ThreadValues, replay_threads
from autotune.fsutil import read_small
from autotune.knobs.readback import nice_factor, nice_for_factor, thread_nice
from autotune.roles import Role
from autotune.system import cgroups
from autotune.target import Members, exiting, start_time

KNOBS = {"weight.trainer": Role.TRAINER, "weight.loader": Role.LOADER}
# rmdir attempts on restore, backing off from 1 ms to 128 ms: about 2 s in all, far more than a
# killed process takes to be reaped, yet short enough for a shutdown path.
RMDIR_TRIES = 20
ROLE_DIRS = (Role.TRAINER, Role.LOADER)
JOINT = "job"  # the cgroup holding the whole job while both roles weigh the same


@dataclass(frozen=True)
class WeightsContext:
    """What a weights backend needs to know to start.

    Attributes:
        mounts: the node's cgroup layout.
        cgroup_parent: the cgroup the tuner creates its session cgroups under.
        session_id: this session's name (a cgroup directory name).
        trainer_pid: the target's first process.
    """

    mounts: cgroups.CgroupMounts
    cgroup_parent: str
    session_id: str
    trainer_pid: int


# --- cgroups ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Flavour:
    file: str
    default: int
    lo: int
    hi: int
    controller: str  # for cgroups.cgroup_of: "cpu" (v1) or "" (v2)


V1 = _Flavour("cpu.shares", 1024, 2, 262144, "cpu")
V2 = _Flavour("cpu.weight", 100, 1, 10000, "")


def _read_int(path: Path) -> int | None:
    text = read_small(path)
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def _procs(directory: Path) -> list[int]:
    return [int(p) for p in (read_small(directory / "cgroup.procs") or "").split()]


def _move(pid: int, directory: Path) -> bool:
    """Move a process (all its threads) into a cgroup; False when it is gone."""
    try:
        (directory / "cgroup.procs").write_text(str(pid))
    except ProcessLookupError:
        return False
    except OSError as e:
        if e.errno == errno.ESRCH:
            return False
        raise
    return True


def _origin(entry: Entry, pid: int) -> Path:
    """Where a process in a session's cgroups goes back to: where it was when we first moved it
    (journalled with its start time), else where the trainer came from (a process born in our
    cgroups, or a reused PID); the mount's root when that cgroup is gone."""
    start, origin = entry["moved"].get(str(pid), [None, entry["origin"]])
    if start is not None and start != start_time(pid):
        origin = entry["origin"]
    mount = Path(entry["mount"])
    dest = mount / str(origin).lstrip("/")
    return dest if dest.is_dir() else mount


def _sum_children(directory: Path, flavour: _Flavour, total: int | None = None) -> None:
    """Set a cgroup's weight to the sum of its children's (clamped), so it splits, not caps.

    ``total``: the sum when the caller knows it (our session's own roles), else read.
    """
    if total is None:
        with os.scandir(directory) as it:
            total = sum(_read_int(Path(e.path) / flavour.file) or 0 for e in it if e.is_dir())
    if total:
        (directory / flavour.file).write_text(str(min(max(total, flavour.lo), flavour.hi)))


class CgroupWeights(Family):
    """``weight.<role>`` as ``cpu.shares`` (v1) or ``cpu.weight`` (v2) of the tuner's cgroups.

    Where the job's processes live follows the two multipliers (measured on the cnn job, quiet
    node: role cgroups at equal weights ran 11 % slower than no cgroups, one cgroup for the job
    as fast as none):

    * both 1×: where they came from (the default is the node as found, not an imitation of it);
    * equal: all in one cgroup of the job (``<session>/job``), weighing ``multiplier × default ×
      processes``: the job as a whole weighs more or less against the node, and its roles share
      its CPU as they did in place;
    * different: a cgroup per role, each ``multiplier × default × processes in the role``.
    """

    knobs = tuple(KNOBS)

    def __init__(self, journal: Journal, ctx: WeightsContext, version: int) -> None:
        super().__init__(journal)
        self.flavour = V1 if version == 1 else V2
        mount = ctx.mounts.v1.get("cpu") if version == 1 else ctx.mounts.v2
        if mount is None:
            raise Stuck(f"no cgroup v{version} cpu hierarchy is mounted")
        self.mount = mount
        self.parent = mount / ctx.cgroup_parent
        self.session = self.parent / ctx.session_id
        self.dirs = {r: self.session / str(r) for r in ROLE_DIRS}
        self.joint = self.session / JOINT
        self.trainer_pid = ctx.trainer_pid
        self.factor: dict[Role, float] = {r: 1.0 for r in ROLE_DIRS}
        self.value: dict[Path, int] = {}  # what we wrote, per occupied cgroup
        self.count: dict[Path, int] = {}  # the processes it was written for
        self.placed: dict[Role, set[int]] = {r: set() for r in ROLE_DIRS}
        self.yielded: set[Role] = set()
        self.entry: Entry | None = None

    def _rel(self, directory: Path) -> str:
        return "/" + str(directory.relative_to(self.mount))

    def _ours(self) -> set[str]:
        return {self._rel(d) for d in (*self.dirs.values(), self.joint)}

    def home(self, role: Role) -> Path | None:
        """The cgroup the role's processes belong in now (None: where they came from)."""
        t, lo = self.factor[Role.TRAINER], self.factor[Role.LOADER]
        if t == 1.0 and lo == 1.0:
            return None
        return self.joint if t == lo else self.dirs[role]

    def _create(self) -> None:
        origin = cgroups.cgroup_of(self.trainer_pid, self.flavour.controller) or "/"
        self.entry = {
            "kind": "cgroups",
            "knob": None,
            "mount": str(self.mount),
            "file": self.flavour.file,
            "parent": str(self.parent),
            "session": str(self.session),
            "roles": [str(d) for d in self.dirs.values()],
            "joint": str(self.joint),
            "origin": origin,
            "moved": {},
        }
        self.journal.put("cgroups", self.entry)
        self.journal.flush()
        try:
            self.parent.mkdir(exist_ok=True)
            self.session.mkdir()
            if self.flavour is V2:
                for d in (self.parent, self.session):
                    (d / "cgroup.subtree_control").write_text("+cpu")
            for d in (*self.dirs.values(), self.joint):
                d.mkdir()
        except OSError as e:
            raise Stuck(f"cannot create cgroups under {self.parent}: {e.strerror}") from e

    def _place(self, role: Role, pids: list[int], home: Path) -> None:
        """Journal where each process is, then move it into ``home`` and verify."""
        if self.entry is None or not pids:
            return
        if not home.is_dir():
            raise Stuck(f"{home} is gone (someone removed our cgroup)")
        ours = self._ours()
        moved: dict[str, Any] = self.entry["moved"]
        for pid in pids:
            if str(pid) in moved:
                continue
            now = cgroups.cgroup_of(pid, self.flavour.controller)
            # Born inside one of our cgroups: it came from where its parent came from.
            moved[str(pid)] = [start_time(pid), self.entry["origin"] if now in ours else now]
            self.journal.touch()
        self.journal.flush()
        want = self._rel(home)
        for pid in pids:
            try:
                if not _move(pid, home):
                    continue
            except OSError as e:
                if exiting(pid):
                    continue  # a worker on its way out: nothing to place
                raise Stuck(f"cannot move pid {pid} into {home}: {e.strerror}") from e
            now = cgroups.cgroup_of(pid, self.flavour.controller)
            if now is not None and now != want:
                if exiting(pid):
                    continue  # it exited between the move and the check (a DataLoader restart)
                raise Stuck(f"pid {pid} is in {now} after moving it into {want}")
            self.placed[role].add(pid)

    def _release(self, role: Role) -> None:
        """Move the role's processes back where they came from (both weights are 1× again)."""
        if self.entry is None:  # nothing was ever placed
            return
        for pid in sorted(self.placed[role]):
            try:
                _move(pid, _origin(self.entry, pid))
            except OSError as e:
                if not exiting(pid):
                    raise Stuck(f"cannot move pid {pid} back: {e.strerror}") from e
        self.placed[role].clear()

    def _write(self, directory: Path, factor: float) -> None:
        f = self.flavour
        n = max(1, len(_procs(directory)))
        value = min(max(round(factor * f.default * n), f.lo), f.hi)
        path = directory / f.file
        if not write_int(path, value):
            raise Stuck(f"{path} is gone (someone removed our cgroup)")
        self.value[directory] = value
        self.count[directory] = n

    def _sum_up(self) -> None:
        try:
            _sum_children(self.session, self.flavour, sum(self.value.values()) or None)
            _sum_children(self.parent, self.flavour)
        except OSError as e:
            raise Stuck(f"cannot update the weights above {self.session}: {e.strerror}") from e

    def _pids(self, role: Role, members: Members) -> list[int]:
        return list(members.trainer_pids if role is Role.TRAINER else members.loader_pids)

    def _arrange(self, members: Members) -> None:
        """Put each role's processes in its home and write the weights of the homes in use."""
        roles = [r for r in ROLE_DIRS if r not in self.yielded]  # a person's now: left alone
        for role in roles:
            home = self.home(role)
            if home is None:
                self._release(role)
                continue
            self.placed[role] = {
                p
                for p in self.placed[role]
                if cgroups.cgroup_of(p, self.flavour.controller) == self._rel(home)
            }
            self._place(role, self._pids(role, members), home)
        # One write per cgroup in use (the job's cgroup is both roles' home).
        homes = {h: self.factor[r] for r in roles if (h := self.home(r)) is not None}
        for home, factor in homes.items():
            self._write(home, factor)
        # Cgroups left empty keep their old weight: an empty cgroup competes for nothing.
        occupied = {h for r in ROLE_DIRS if (h := self.home(r)) is not None}
        self.value = {d: v for d, v in self.value.items() if d in occupied}
        self.count = {d: n for d, n in self.count.items() if d in occupied}
        self._sum_up()

    def set(self, knob: str, value: float, members: Members) -> str:
        role = KNOBS[knob]
        if self.entry is None:
            self._create()
        self.factor[role] = value
        try:
            self._arrange(members)
        except Stuck:
            self.yielded.add(role)  # disabled from now on: its processes are left where they are
            raise
        home = self.home(role)
        if home is None:
            return "both weights 1×: the job's processes are back where they came from"
        return f"{self.flavour.file}={self.value[home]} in {home}"

    def follow(self, members: Members) -> list[Notice]:
        if self.entry is None:
            return []
        out: list[Notice] = []
        for role in ROLE_DIRS:
            home = self.home(role)
            if role in self.yielded or home is None:
                continue
            knob = f"weight.{role}"
            path = home / self.flavour.file
            got = _read_int(path)
            if got != self.value.get(home):
                self.yielded.add(role)
                out.append(Notice(knob, "yield", f"{path} was set to {got} behind our back"))
                continue
            inside = set(_procs(home))
            gone = [p for p in self.placed[role] if p not in inside and not exiting(p)]
            if gone:
                where = cgroups.cgroup_of(gone[0], self.flavour.controller)
                if where not in self._ours():
                    self.yielded.add(role)
                    out.append(
                        Notice(knob, "yield", f"pid {gone[0]} was moved to {where} behind our back")
                    )
                    continue
            try:
                self._place(role, [p for p in self._pids(role, members) if p not in inside], home)
                if max(1, len(_procs(home))) != self.count.get(home):
                    self._write(home, self.factor[role])  # the weight is per process
                    self._sum_up()
            except Stuck as e:
                out.append(Notice(knob, "stuck", str(e)))
        return out


def replay_cgroups(session: Session) -> list[Decision]:
    """Move every task in the session's cgroups back where it came from; remove the cgroups."""
    out: list[Decision] = []
    for e in session["entries"].values():
        if e.get("kind") != "cgroups":
            continue
        default = V1.default if e["file"] == V1.file else V2.default
        homes = [(f"weight.{r}", r, Path(p)) for r, p in zip(ROLE_DIRS, e["roles"], strict=True)]
        if e.get("joint"):  # journals from before the job's cgroup have none
            homes.append(("weight", Role.OTHER, Path(e["joint"])))
        for knob, role, d in homes:
            if not d.is_dir():
                continue
            procs = _procs(d)
            shares = _read_int(d / e["file"])
            old = shares / (default * len(procs)) if shares and procs else None
            back = 0
            # Go round again when rmdir fails: a task forked meanwhile landed in the cgroup, or
            # a killed task is still exiting (it holds the cgroup until it is reaped).
            for attempt in range(RMDIR_TRIES):
                for pid in procs:
                    try:
                        back += _move(pid, _origin(e, pid))
                    except OSError:
                        continue
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.001 * 2 ** min(attempt, 7))
                    procs = _procs(d)
            removed = not d.exists()
            if role is Role.OTHER and not back and removed:
                continue  # the job's cgroup, never used: nothing to say
            what = f"{back} process(es) moved back; {'removed' if removed else 'cannot remove'} {d}"
            event = RESTORE if removed else FAILED
            out.append(Decision(knob, role, old, 1.0, "restore", event, detail=what))
        session_dir, parent = Path(e["session"]), Path(e["parent"])
        for d in (session_dir, parent):  # the parent goes only when no other session uses it
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                flavour = V1 if e["file"] == V1.file else V2
                if d == parent and parent.is_dir():  # other sessions remain: re-sum them
                    with contextlib.suppress(OSError):
                        _sum_children(parent, flavour)
    return out


# --- nice -------------------------------------------------------------------------------------


class NiceValues(ThreadValues[int]):
    """A thread's nice value."""

    kind = "nice"

    def get(self, tid: int) -> int | None:
        return thread_nice(tid)

    def put(self, tid: int, value: int) -> None:
        os.setpriority(os.PRIO_PROCESS, tid, value)

    def encode(self, value: int) -> Any:
        return value

    def decode(self, raw: Any) -> int:
        return int(raw)

    def number(self, value: int) -> float:
        return nice_factor(value)

    def show(self, value: int) -> str:
        return f"nice {value}"


class NiceWeights(Family):
    """``weight.<role>`` as the nice value of every thread of the role."""

    knobs = tuple(KNOBS)

    def __init__(self, journal: Journal, ctx: WeightsContext) -> None:
        super().__init__(journal)
        self.threads = PerThread(journal, NiceValues(), {r: k for k, r in KNOBS.items()})
        self.threads.begin(ctx.trainer_pid)

    def set(self, knob: str, value: float, members: Members) -> str:
        role = KNOBS[knob]
        nice = nice_for_factor(value)
        pids = members.trainer_pids if role is Role.TRAINER else members.loader_pids
        n = self.threads.assign(role, nice, pids)
        return f"nice {nice} on {n} thread(s)"

    def follow(self, members: Members) -> list[Notice]:
        notices = [
            self.threads.follow(Role.TRAINER, members.trainer_pids),
            self.threads.follow(Role.LOADER, members.loader_pids),
        ]
        return [n for n in notices if n is not None]


def replay_nice(session: Session) -> list[Decision]:
    """Restore the nice value of every thread that still has one we gave it."""
    return replay_threads(session, NiceValues(), KNOBS)


# --- choice -----------------------------------------------------------------------------------


def build(
    journal: Journal, ctx: WeightsContext, prefer: str | None = None
) -> tuple[Family, backends.Choice]:
    """The weights backend for this node (or ``prefer``), as a family.

    A chosen backend whose module is not installed (the sched_ext one, say) falls back to the
    next choice, and the returned :class:`~autotune.actuators.backends.Choice` says so.
    """
    choice = backends.weights(ctx.mounts, prefer=prefer)
    if choice.backend == "sched_ext":
        module, _, attr = backends.WEIGHTS_IMPL["sched_ext"].partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            fallback = backends.weights(ctx.mounts, prefer=None, sched_ext=False)
            choice = backends.Choice(
                "weights", fallback.backend, f"{fallback.reason}; sched_ext backend missing ({e})"
            )
        else:
            family: Family = cls(journal, ctx)
            return family, choice
    if choice.backend == "cgroup2":
        return CgroupWeights(journal, ctx, 2), choice
    if choice.backend == "cgroup1":
        return CgroupWeights(journal, ctx, 1), choice
    return NiceWeights(journal, ctx), choice
