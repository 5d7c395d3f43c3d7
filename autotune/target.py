"""The tuned job, and which of its processes and threads belong to which role.

A target is a PID, a cgroup, or a command autotune starts. Its *trainer* is the target process
(in a cgroup: the processes whose parent is outside it) with all its threads; its *loaders* are
every descendant process (DataLoader workers and helpers) with their threads. The tree is walked
through ``/proc/<pid>/task/<tid>/children`` (CONFIG_PROC_CHILDREN), which costs a few file reads,
not a scan of every process.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from autotune.errors import NotPermitted, UserError
from autotune.fsutil import read_small

PROC = Path("/proc")


# The tuner lists the job's processes and threads every interval: string paths, raw reads.
_read = read_small


def stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command, from ``state`` on (proc(5)'s field
    3 is ``[0]``); None when the process is gone or unreadable."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    # The command may hold spaces and parentheses: fields follow the last ')'.
    return stat[stat.rindex(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (tells a reused PID apart)."""
    fields = stat_fields(pid)
    return None if fields is None else int(fields[19])


PF_EXITING = 0x4  # include/linux/sched.h


def exiting(pid: int) -> bool:
    """Whether a process is gone or on its way out (exiting, or a zombie not yet reaped).

    cgroup v1 shows such a process in the root cgroup (``/proc/<pid>/cgroup``) whatever cgroup it
    ran in, and it can no longer be moved between cgroups.
    """
    fields = stat_fields(pid)
    if fields is None:
        return True
    return fields[0] in ("Z", "X", "x") or bool(int(fields[6]) & PF_EXITING)


def threads(pid: int) -> list[int]:
    """The thread ids of a process (empty when it is gone)."""
    try:
        return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return []


def children(pid: int, tids: Sequence[int] | None = None) -> list[int]:
    """Direct child processes of every thread of ``pid`` (``tids``: its threads, if known)."""
    out: list[int] = []
    for tid in threads(pid) if tids is None else tids:
        text = _read(f"/proc/{pid}/task/{tid}/children")
        if text:
            out.extend(int(c) for c in text.split())
    return out


def descendants(
    pid: int, prune: frozenset[int] = frozenset(), tids: dict[int, list[int]] | None = None
) -> list[int]:
    """Every process below ``pid`` in the process tree, breadth first, except the subtrees
    rooted at ``prune``. ``tids``, if given, caches each visited process's threads (read once
    to find its children, so the caller need not list them again)."""
    tids = {} if tids is None else tids
    out: list[int] = []
    if pid not in tids:
        tids[pid] = threads(pid)
    queue = children(pid, tids[pid])
    seen = {pid, *prune}
    while queue:
        p = queue.pop(0)
        if p in seen:
            continue
        seen.add(p)
        out.append(p)
        tids[p] = threads(p)
        queue.extend(children(p, tids[p]))
    return out


@dataclass(frozen=True)
class Members:
    """One snapshot of the roles' processes and threads."""

    trainer_pids: tuple[int, ...]
    trainer_tids: tuple[int, ...]
    loader_pids: tuple[int, ...]
    loader_tids: tuple[int, ...]

    @property
    def all_pids(self) -> tuple[int, ...]:
        return self.trainer_pids + self.loader_pids


class Target:
    """The job being recorded or tuned.

    Build one with :meth:`from_pid`, :meth:`from_cgroup` or :meth:`launch`; each checks its input
    and raises :class:`~autotune.errors.UserError` with one clear line.
    """

    def __init__(
        self,
        roots: Sequence[int],
        description: str,
        *,
        process: subprocess.Popen[bytes] | None = None,
        cgroup: Path | None = None,
        command: Sequence[str] | None = None,
        exclude: Sequence[int] = (),
    ) -> None:
        self._roots = [(p, start_time(p)) for p in roots]
        # Processes that are not the job's even though they descend from it: a tuner that the
        # job started itself (autotune.tuning()) must not tune itself as a loader.
        self.exclude = frozenset(exclude)
        self.description = description
        self.process = process
        self.cgroup = cgroup
        self.command = list(command) if command else None

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def from_pid(cls, pid: int, exclude: Sequence[int] = ()) -> Target:
        """Target an existing process (``exclude``: descendants that are not the job's)."""
        if pid <= 0 or start_time(pid) is None:
            raise UserError(f"no process with PID {pid}")
        if pid == os.getpid():
            raise UserError(f"PID {pid} is autotune itself")
        cmd = (_read(PROC / str(pid) / "cmdline") or "").replace("\0", " ").strip()
        return cls([pid], f"pid {pid} ({cmd or '?'})", command=cmd.split() or None, exclude=exclude)

    @classmethod
    def from_cgroup(cls, path: str | Path) -> Target:
        """Target every process of a cgroup (v1 or v2 directory)."""
        p = Path(path)
        procs_file = p / "cgroup.procs"
        if not procs_file.is_file():
            raise UserError(f"{p} is not a cgroup directory (no cgroup.procs)")
        try:
            pids = [int(x) for x in procs_file.read_text().split()]
        except PermissionError as e:
            raise NotPermitted(f"cannot read {procs_file}: permission denied") from e
        if not pids:
            raise UserError(f"cgroup {p} has no processes")
        inside = set(pids)
        roots = [pid for pid in pids if ppid(pid) not in inside]
        return cls(roots or pids[:1], f"cgroup {p}", cgroup=p)

    @classmethod
    def launch(
        cls, command: Sequence[str], env: Mapping[str, str] | None = None, paused: bool = False
    ) -> Target:
        """Start ``command`` as the target (stdin, stdout and stderr stay the caller's).

        With ``paused`` the process stops itself before it executes the command, keeping its
        PID; :meth:`resume` lets it run. A tuner or recorder thus attaches its telemetry before
        the job does anything, and sees it from its first instruction.
        """
        if not command:
            raise UserError("no command given after --")
        exe = shutil.which(command[0]) if "/" not in command[0] else command[0]
        if exe is None or not os.path.exists(exe):
            raise UserError(f"command not found: {command[0]}")
        if not os.access(exe, os.X_OK) or os.path.isdir(exe):
            raise UserError(f"command is not executable: {command[0]}")
        argv = list(command)
        if paused:
            # The shell stops itself, and on SIGCONT becomes the command (same PID).
            argv = ["/bin/sh", "-c", 'kill -STOP $$; exec "$@"', "autotune-paused", *argv]
        try:
            proc = subprocess.Popen(argv, env={**os.environ, **(env or {})})
        except OSError as e:
            raise UserError(f"cannot start {command[0]}: {e.strerror or e}") from None
        target = cls([proc.pid], " ".join(command), process=proc, command=command)
        if paused:
            target._wait_stopped()
        return target

    def _wait_stopped(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            fields = stat_fields(self.pid)
            if fields is None or fields[0] == "T":
                return
            time.sleep(0.002)

    def resume(self) -> None:
        """Let a job started with ``paused=True`` run (a no-op otherwise)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.pid, signal.SIGCONT)

    # --- queries --------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        """The (first) trainer process."""
        return self._roots[0][0]

    @property
    def roots(self) -> list[int]:
        return [p for p, _ in self._roots]

    def alive(self) -> bool:
        """Whether any trainer process still runs (and is the same process, not a reused PID)."""
        if self.process is not None and self.process.poll() is not None:
            return False
        return any(_running_since(p) == st for p, st in self._roots)

    def members(self) -> Members:
        """The roles' processes and threads, now."""
        trainer_pids = tuple(p for p, st in self._roots if start_time(p) == st)
        tids: dict[int, list[int]] = {}  # each process's threads, listed once
        loader_pids = tuple(
            d
            for p in trainer_pids
            for d in descendants(p, self.exclude, tids)
            if d not in self.exclude
        )
        trainer_tids = tuple(t for p in trainer_pids for t in tids[p])
        loader_tids = tuple(t for p in loader_pids for t in tids[p])
        return Members(trainer_pids, trainer_tids, loader_pids, loader_tids)

    def wait(self, timeout: float | None = None) -> int | None:
        """For a launched command: wait for it and return its exit status."""
        if self.process is None:
            return None
        return self.process.wait(timeout)


def ppid(pid: int) -> int | None:
    """The process's parent; None when it is gone."""
    fields = stat_fields(pid)
    return None if fields is None else int(fields[1])


def _running_since(pid: int) -> int | None:
    """The start time of a process that runs (not a zombie); None otherwise. One read of its
    stat where :func:`start_time` and :func:`zombie` would make two (every interval, per root)."""
    fields = stat_fields(pid)
    return None if fields is None or fields[0] in "ZX" else int(fields[19])


def zombie(pid: int) -> bool:
    """Whether a process is gone, or a zombie waiting for its parent to reap it."""
    fields = stat_fields(pid)
    return fields is None or fields[0] in "ZX"
