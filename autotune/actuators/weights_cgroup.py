"""CPU weight per role through cgroups: v2 ``cpu.weight`` or v1 ``cpu.shares``.

The tuner makes its own tree under the controller's mount::

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

The other weights backends are :mod:`~autotune.actuators.weights_scx` (our sched_ext
scheduler's map, preferred when it runs) and :mod:`~autotune.actuators.weights_nice` (no cpu
controller); :mod:`~autotune.actuators.registry` chooses between them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from autotune.actuators.backend import Availability, Backend, Context, Notice, Stuck, write_int
from autotune.actuators.decisions import FAILED, RESTORE, Decision
from autotune.actuators.journal import Journal, JournalEntry, Record
from autotune.fsutil import read_small
from autotune.knobs import Family
from autotune.knobs.readback import weight_values
from autotune.roles import Role
from autotune.system import cgroups
from autotune.target import Members, exiting, start_time

# rmdir attempts on restore, backing off from 1 ms to 128 ms: about 2 s in all, far more than a
# killed process takes to be reaped, yet short enough for a shutdown path.
RMDIR_TRIES = 20
ROLE_DIRS = (Role.TRAINER, Role.LOADER)
JOINT = "job"  # the cgroup holding the whole job while both roles weigh the same


class CgroupsEntry(JournalEntry):
    """A session's cgroup tree, and where each process it moved came from.

    Attributes:
        mount: the controller's mount; ``file``: ``cpu.weight`` or ``cpu.shares``.
        parent, session, roles, joint: the cgroups made (``joint``: None in journals written
            before the job's own cgroup existed).
        origin: where the trainer came from (relative to the mount).
        moved: pid → (start time, where it came from).
    """

    kind: Literal["cgroups"] = "cgroups"
    mount: str
    file: str
    parent: str
    session: str
    roles: list[str]
    joint: str | None = None
    origin: str
    moved: dict[str, tuple[int | None, str | None]] = Field(default_factory=dict)


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


def _origin(entry: CgroupsEntry, pid: int) -> Path:
    """Where a process in a session's cgroups goes back to: where it was when we first moved it
    (journalled with its start time), else where the trainer came from (a process born in our
    cgroups, or a reused PID); the mount's root when that cgroup is gone."""
    start, origin = entry.moved.get(str(pid), (None, entry.origin))
    if start is not None and start != start_time(pid):
        origin = entry.origin
    mount = Path(entry.mount)
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


class CgroupWeights(Backend):
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

    family = Family.WEIGHTS
    entry = CgroupsEntry
    flavour: ClassVar[_Flavour]

    def __init__(self, journal: Journal, ctx: Context) -> None:
        super().__init__(journal, ctx)
        mount = self._mount(ctx.mounts)
        if mount is None:
            raise Stuck(f"no {self.name} cpu hierarchy is mounted")
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
        self.journalled: CgroupsEntry | None = None

    @staticmethod
    def _mount(mounts: cgroups.CgroupMounts) -> Path | None:
        raise NotImplementedError

    @classmethod
    def available(cls, mounts: cgroups.CgroupMounts) -> Availability:
        if cls._mount(mounts) is None:
            return Availability(False, f"no {cls.name} cpu controller")
        version = cls.name.removeprefix("cgroup")
        return Availability(True, f"cgroup v{version} {cls.flavour.file}")

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
        self.journalled = CgroupsEntry(
            mount=str(self.mount),
            file=self.flavour.file,
            parent=str(self.parent),
            session=str(self.session),
            roles=[str(d) for d in self.dirs.values()],
            joint=str(self.joint),
            origin=origin,
        )
        self.journal.put(self.journalled.kind, self.journalled)
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
        if self.journalled is None or not pids:
            return
        if not home.is_dir():
            raise Stuck(f"{home} is gone (someone removed our cgroup)")
        ours = self._ours()
        moved = self.journalled.moved
        for pid in pids:
            if str(pid) in moved:
                continue
            now = cgroups.cgroup_of(pid, self.flavour.controller)
            # Born inside one of our cgroups: it came from where its parent came from.
            moved[str(pid)] = (start_time(pid), self.journalled.origin if now in ours else now)
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
        if self.journalled is None:  # nothing was ever placed
            return
        for pid in sorted(self.placed[role]):
            try:
                _move(pid, _origin(self.journalled, pid))
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
        role = self.roles[knob]
        if self.journalled is None:
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

    def read(self, members: Members) -> dict[str, float]:
        return weight_values(members, self.ctx.mounts, self.ctx.cgroup_parent)

    def follow(self, members: Members) -> list[Notice]:
        if self.journalled is None:
            return []
        out: list[Notice] = []
        for role in ROLE_DIRS:
            home = self.home(role)
            if role in self.yielded or home is None:
                continue
            knob = self.knob_for(role)
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

    @classmethod
    def restore(cls, record: Record, entries: Sequence[JournalEntry]) -> list[Decision]:
        """Move every task in the session's cgroups back where it came from; remove them."""
        out: list[Decision] = []
        for e in entries:
            if isinstance(e, CgroupsEntry):
                out.extend(_restore_tree(e))
        return out


def _restore_tree(e: CgroupsEntry) -> list[Decision]:
    """Move every task in one session's cgroups back where it came from; remove the cgroups."""
    out: list[Decision] = []
    default = V1.default if e.file == V1.file else V2.default
    homes = [
        (CgroupWeights.knob_for(r), r, Path(p)) for r, p in zip(ROLE_DIRS, e.roles, strict=True)
    ]
    if e.joint:  # journals from before the job's cgroup have none
        homes.append(("weight", Role.OTHER, Path(e.joint)))
    for knob, role, d in homes:
        if not d.is_dir():
            continue
        procs = _procs(d)
        shares = _read_int(d / e.file)
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
    session_dir, parent = Path(e.session), Path(e.parent)
    for d in (session_dir, parent):  # the parent goes only when no other session uses it
        try:
            d.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            flavour = V1 if e.file == V1.file else V2
            if d == parent and parent.is_dir():  # other sessions remain: re-sum them
                with contextlib.suppress(OSError):
                    _sum_children(parent, flavour)
    return out


class CgroupV2Weights(CgroupWeights):
    """Weights as cgroup v2 ``cpu.weight``."""

    name = "cgroup2"
    flavour = V2

    @staticmethod
    def _mount(mounts: cgroups.CgroupMounts) -> Path | None:
        return mounts.v2 if mounts.v2 is not None and "cpu" in mounts.v2_controllers else None


class CgroupV1Weights(CgroupWeights):
    """Weights as cgroup v1 ``cpu.shares``."""

    name = "cgroup1"
    flavour = V1

    @staticmethod
    def _mount(mounts: cgroups.CgroupMounts) -> Path | None:
        return mounts.v1.get("cpu")
