"""Per-thread settings of a role (CPU affinity, nice): journalled, written, verified, followed.

Linux keeps both affinity and nice per thread, and a new thread or process inherits them from
the thread that made it. So the journal keeps, per process, the original value of its main
thread plus the threads that differed from it; a thread that appears later inherited a value,
and restore puts it back to its process's original when that inherited value is one we wrote.
A process the journal never saw (forked after the last write) gets the family's *origin*: what
the trainer had before we touched it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import Field

from autotune.actuators.backend import Notice, Stuck
from autotune.actuators.decisions import FAILED, LEFT, RESTORE, Decision
from autotune.actuators.journal import Journal, JournalEntry, Record
from autotune.roles import Role
from autotune.target import descendants, start_time, threads

V = TypeVar("V")


class ThreadEntry(JournalEntry):
    """A process's original per-thread value (its main thread's), and the threads that differed.

    Attributes:
        pid: the process, with its ``start`` time (a reused PID is not restored).
        original: the main thread's value before we wrote (JSON form).
        threads: thread id → its own original, for threads that differed.
        left: threads changed behind our back: theirs now, never restored.
    """

    knob: str
    pid: int
    start: int | None
    original: Any
    threads: dict[str, Any] = Field(default_factory=dict)
    left: list[int] = Field(default_factory=list)


class ThreadValues(ABC, Generic[V]):
    """How to read, write and store one per-thread setting."""

    entry: ClassVar[type[ThreadEntry]]

    @property
    def kind(self) -> str:
        return self.entry.kind_name()

    @abstractmethod
    def get(self, tid: int) -> V | None:
        """The thread's value, or None when it is gone."""

    @abstractmethod
    def put(self, tid: int, value: V) -> None:
        """Write the thread's value; raises OSError (ProcessLookupError when it is gone)."""

    @abstractmethod
    def encode(self, value: V) -> Any:
        """The value as JSON (the journal's form; comparable with ``==``)."""

    @abstractmethod
    def decode(self, raw: Any) -> V:
        """Back from JSON."""

    @abstractmethod
    def number(self, value: V) -> float:
        """The value on the knob's scale, for the decision log."""

    def show(self, value: V) -> str:
        return str(self.encode(value))


def _pairs(pids: Sequence[int]) -> list[tuple[int, int]]:
    return [(pid, tid) for pid in pids for tid in threads(pid)]


class PerThread(Generic[V]):
    """One per-thread setting for each role.

    Args:
        journal: the session's journal.
        values: how to read and write the setting.
        knobs: the knob of each role.
    """

    def __init__(self, journal: Journal, values: ThreadValues[V], knobs: dict[Role, str]) -> None:
        self.journal = journal
        self.values = values
        self.knobs = knobs
        self.wanted: dict[Role, V] = {}
        self.known: dict[Role, set[int]] = {r: set() for r in knobs}
        self.yielded: set[Role] = set()

    def _written_all(self) -> list[Any]:
        return [v for knob in self.knobs.values() for v in self.journal.written(knob)]

    def _journal_process(self, role: Role, pid: int) -> None:
        key = f"{self.values.kind}:{pid}"
        start = start_time(pid)
        old = self.journal.entries.get(key)
        if isinstance(old, ThreadEntry) and old.start == start:
            return
        main = self.values.get(pid)
        if main is None or start is None:
            return  # gone already
        ours = self._written_all()
        enc = self.values.encode(main)
        # A process born of a thread we set inherited our value, not the machine's.
        original = self.journal.origin(self.values.kind) if enc in ours else enc
        exceptions: dict[str, Any] = {}
        for tid in threads(pid):
            v = self.values.get(tid)
            if v is not None and (e := self.values.encode(v)) != original and e not in ours:
                exceptions[str(tid)] = e
        entry = self.values.entry(
            kind=self.values.kind,
            knob=self.knobs[role],
            pid=pid,
            start=start,
            original=original,
            threads=exceptions,
        )
        self.journal.put(key, entry)

    def begin(self, trainer_pid: int) -> None:
        """Record the origin (the trainer's value before we touch anything)."""
        v = self.values.get(trainer_pid)
        if v is not None:
            self.journal.set_origin(self.values.kind, self.values.encode(v))

    def assign(self, role: Role, value: V, pids: Sequence[int]) -> int:
        """Journal, write ``value`` to every thread of ``pids``, verify; returns threads set."""
        for pid in pids:
            self._journal_process(role, pid)
        self.journal.wrote(self.knobs[role], self.values.encode(value))
        self.journal.flush()
        self.wanted[role] = value
        done = self._write(role, value, _pairs(pids))
        self.known[role] = done
        return len(done)

    def _write(self, role: Role, value: V, pairs: list[tuple[int, int]]) -> set[int]:
        done: set[int] = set()
        for pid, tid in pairs:
            try:
                self.values.put(tid, value)
            except ProcessLookupError:
                continue  # the thread exited meanwhile
            except OSError as e:
                raise Stuck(
                    f"cannot set thread {tid} of pid {pid} to {self.values.show(value)}: "
                    f"{e.strerror}"
                ) from e
            got = self.values.get(tid)
            if got is None:
                continue
            if got != value:
                raise Stuck(
                    f"thread {tid} of pid {pid} reads back {self.values.show(got)} after "
                    f"writing {self.values.show(value)}"
                )
            done.add(tid)
        return done

    def follow(self, role: Role, pids: Sequence[int]) -> Notice | None:
        """Set new threads of the role; a known thread changed behind our back yields the knob.

        A role never set keeps what the machine gave it: a thread of it that carries a value
        written for another role (a DataLoader worker forked by a trainer pinned to one CPU
        inherits that CPU) gets the job's original value back (:meth:`_unleak`)."""
        if role in self.yielded:
            return None
        if role not in self.wanted:
            return self._unleak(role, pids)
        value = self.wanted[role]
        pairs = _pairs(pids)
        alive: set[int] = set()
        new: list[tuple[int, int]] = []
        diverged: list[tuple[int, int, V]] = []
        for pid, tid in pairs:
            v = self.values.get(tid)
            if v is None:
                continue
            alive.add(tid)
            if tid in self.known[role]:
                if v != value:
                    diverged.append((pid, tid, v))
            elif v != value:
                new.append((pid, tid))
            else:
                self.known[role].add(tid)
        self.known[role] &= alive
        for pid in {p for p, _ in pairs}:
            self._journal_process(role, pid)
        if diverged:
            for pid, tid, _ in diverged:
                entry = self.journal.entries.get(f"{self.values.kind}:{pid}")
                if isinstance(entry, ThreadEntry) and tid not in entry.left:
                    entry.left.append(tid)
                    self.journal.touch()
            self.journal.flush()
            self.yielded.add(role)
            pid, tid, v = diverged[0]
            return Notice(
                self.knobs[role],
                "yield",
                f"thread {tid} of pid {pid} was set to {self.values.show(v)} behind our back",
                self.values.number(v),
            )
        self.journal.flush()
        try:
            # A thread may start from one we have not set yet while we work: go round again
            # (a few times; the next interval catches whatever is still left).
            for _ in range(3):
                self.known[role] |= self._write(role, value, new)
                new = [(p, t) for p, t in _pairs(pids) if t not in self.known[role]]
                new = [(p, t) for p, t in new if self.values.get(t) not in (None, value)]
                if not new:
                    break
        except Stuck as e:
            return Notice(self.knobs[role], "stuck", str(e))
        return None

    def _unleak(self, role: Role, pids: Sequence[int]) -> Notice | None:
        """The threads of a role never set that carry one of our values back to the origin.

        A new process inherits its parent's value: a loader forked while the trainer was pinned
        to CPU 0 stayed on CPU 0 beside it, read back as "one CPU of two" (the share the policy
        may ask the loaders for, which was then never written), and left the other CPU to a
        neighbour: cnn_noisy under a constant policy asking the best static setting ran at
        0.62 of that setting held by the harness from the start, 0.77 with this (3 repeats
        each of 8,832 samples, bench/results/online_unleak.json)."""
        ours = self._written_all()
        raw = self.journal.origin(self.values.kind)
        if not ours or raw is None:
            return None
        origin = self.values.decode(raw)
        leaked: list[tuple[int, int]] = []
        for pid, tid in _pairs(pids):
            v = self.values.get(tid)
            if v is not None and v != origin and self.values.encode(v) in ours:
                leaked.append((pid, tid))
        if not leaked:
            return None
        for pid in {p for p, _ in leaked}:
            self._journal_process(role, pid)
        self.journal.flush()
        try:
            self._write(role, origin, leaked)
        except Stuck as e:
            return Notice(self.knobs[role], "stuck", str(e))
        return None


def replay_threads(
    record: Record,
    entries: Sequence[JournalEntry],
    values: ThreadValues[Any],
    roles: dict[str, Role],
) -> list[Decision]:
    """Put back every thread of the session's processes that still holds a value we wrote.

    Args:
        record: the session's journal record.
        entries: its entries of ``values``' kind.
        values: the setting.
        roles: knob → role, for the family's knobs (the trainer's knob first).
    """
    kind = values.kind
    found: dict[int, ThreadEntry] = {}
    for e in entries:
        if isinstance(e, ThreadEntry) and start_time(e.pid) == e.start:
            found[e.pid] = e
    journalled = set(found)
    knobs = list(roles)
    ours_all = [v for k in knobs for v in record.written.get(k, [])]
    origin = record.origin.get(kind)
    # Processes born after the last journal write: found from the target's tree.
    for root, start in record.target.roots:
        if start is None or start_time(root) != start or origin is None:
            continue
        for i, pid in enumerate([root, *descendants(root)]):
            if pid not in found:
                knob = knobs[0] if i == 0 else knobs[-1]
                found[pid] = values.entry(
                    kind=kind, knob=knob, pid=pid, start=None, original=origin
                )
    out: list[Decision] = []
    for pid, e in found.items():
        ours = record.written.get(e.knob, []) if pid in journalled else ours_all
        restored: list[int] = []
        left: list[int] = []
        old = new = None
        for tid in threads(pid):
            cur = values.get(tid)
            if cur is None:
                continue
            if tid in e.left or values.encode(cur) not in ours:
                if tid in e.left:
                    left.append(tid)
                continue
            want = values.decode(e.threads.get(str(tid), e.original))
            if cur == want:
                continue  # what we wrote was its original (a share of 1.0, say)
            try:
                values.put(tid, want)
            except ProcessLookupError:
                continue
            except OSError as err:
                out.append(
                    Decision(
                        e.knob,
                        roles[e.knob],
                        values.number(cur),
                        values.number(want),
                        f"could not restore thread {tid}: {err.strerror}",
                        FAILED,
                    )
                )
                continue
            if values.get(tid) in (want, None):
                restored.append(tid)
                old, new = values.number(cur), values.number(want)
        role = roles[e.knob]
        if restored:
            out.append(
                Decision(
                    e.knob,
                    role,
                    old,
                    new,
                    "restore",
                    RESTORE,
                    detail=f"pid {pid}: {len(restored)} thread(s) to {e.original}",
                )
            )
        if left:
            out.append(
                Decision(
                    e.knob,
                    role,
                    None,
                    None,
                    "changed by someone else: left as is",
                    LEFT,
                    detail=f"pid {pid}: thread(s) {', '.join(map(str, left))}",
                )
            )
    return out
