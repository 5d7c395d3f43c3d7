"""The actuator API: one tuning session's hands on the node.

::

    with Actuators(target, settings, dry_run=False, log=DecisionLog(path)) as act:
        act.apply({"weight.trainer": 4.0, "readahead": 1024.0}, reason="explore")
        act.follow()   # once per interval

Every write is bounded by the knob table, journalled first, read back and verified; a knob that
does not stick, or that someone changes behind our back, is disabled (:attr:`Actuators.disabled`)
and logged. Leaving the block, SIGINT, SIGTERM, SIGHUP and the target's exit replay the journal
(:mod:`autotune.actuators.restore`) and clear this session from it; after a crash,
``autotune restore`` replays what is left.
"""

from __future__ import annotations

import atexit
import os
import secrets
import signal
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from autotune.actuators import registry
from autotune.actuators.backend import Backend, Channel, Context, Stuck
from autotune.actuators.decisions import (
    FAILED,
    RESTORE,
    SET,
    STUCK,
    YIELD,
    Decision,
    DecisionLog,
)
from autotune.actuators.journal import Journal
from autotune.actuators.registry import Choice
from autotune.actuators.restore import replay_record
from autotune.config import Settings
from autotune.errors import UserError
from autotune.knobs import KNOBS, Family, by_name, of_family
from autotune.roles import Role
from autotune.system import cgroups
from autotune.system.openfiles import refresh_readahead
from autotune.target import Members, Target, start_time

# Signals that end a session with a restore (SIGINT becomes KeyboardInterrupt, the others
# SystemExit(128 + n), so the `with` block unwinds through __exit__).
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Set once a session has turned a signal into that exception: the unwind it started must finish
# (this session's restore, and the caller's own clean-up after it: a harness's disk, a bench's
# cgroups), so a second signal is dropped rather than raised in the middle of it (`pkill -f` of
# a run under `timeout` sends two). Cleared when a session opens; callers with a handler of
# their own check it too (workloads.run.on_sigterm).
UNWINDING = threading.Event()


# Knobs that act on the loaders' processes: a job with none (a trainer that reads its own
# data) feels no change of them until some appear. The prefetch depth is not one: the job
# applies it to the DataLoaders it makes, whether its workers run yet or not.
_LOADER_CPU_KNOBS = frozenset(
    k.name for k in KNOBS if k.role is Role.LOADER and k.family in (Family.WEIGHTS, Family.AFFINITY)
)


class Actuators:
    """Bounded, journalled, verified writes to the knobs of one target.

    Args:
        target: the job.
        settings: ``journal`` and ``cgroup_parent`` are used.
        dry_run: advice mode: compute and log every decision, write nothing (no journal, no
            cgroups).
        log: where decisions go; default stderr only.
        progress: the progress channel (``ProgressServer``) when the job integrates; without it
            ``prefetch.loader`` is disabled.
        devices: block devices for ``readahead``; default: found from the job's open files
            (never the disk holding ``/`` unless named here).
        weights_backend: force a weights backend (``sched_ext``, ``cgroup2``, ``cgroup1``,
            ``nice``); it must be available on this node.
        split_smt: let SMT siblings go to different roles.
    """

    def __init__(
        self,
        target: Target,
        settings: Settings,
        dry_run: bool = False,
        log: DecisionLog | None = None,
        *,
        progress: Channel | None = None,
        devices: Sequence[str] | None = None,
        weights_backend: str | None = None,
        split_smt: bool = False,
    ) -> None:
        if not target.alive():
            raise UserError(f"the target ({target.description}) is not running")
        self.target = target
        self.settings = settings
        self.dry_run = dry_run
        self.log = log or DecisionLog()
        self.progress = progress
        self.session_id = f"{os.getpid()}-{secrets.token_hex(3)}"
        roots = [(p, start_time(p)) for p in target.roots]
        self.journal = Journal(settings.journal, self.session_id, target.description, roots)
        self.disabled: dict[str, str] = {}
        self.backends: dict[Family, Choice] = {}
        self.target_exited = False
        self._mounts = cgroups.mounts()
        self._backends: dict[str, Backend] = {}  # knob → the backend acting on it
        self._wanted: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._defaults: dict[str, float] = {}
        self._open = False
        self._closing = False
        self._pending_signal: int | None = None
        self._old_handlers: dict[int, Any] = {}
        self._build(devices, weights_backend, split_smt)

    # --- setup ------------------------------------------------------------------------------

    def _build(self, devices: Sequence[str] | None, prefer: str | None, split_smt: bool) -> None:
        ctx = Context(
            self._mounts,
            self.settings.cgroup_parent,
            self.session_id,
            self.target.pid,
            devices=devices,
            progress=self.progress,
            split_smt=split_smt,
            readahead_open_files=self.settings.readahead_open_files,
        )
        for family in Family:
            try:
                backend, choice = registry.build(
                    family, self.journal, ctx, prefer if family is Family.WEIGHTS else None
                )
            except Stuck as e:  # this node or job cannot use the family: its knobs are off
                for knob in of_family(family):
                    self.disabled[knob.name] = str(e)
                continue
            self.backends[family] = choice
            for knob_name in backend.knobs:
                self._backends[knob_name] = backend

    def open(self) -> Actuators:
        """Read the defaults and take the signals; :meth:`close` undoes everything."""
        if self._open:
            return self
        self._defaults = self.current()
        self._last = dict(self._defaults)
        self._open = True
        UNWINDING.clear()
        self._take_signals()
        atexit.register(self.close)
        return self

    def __enter__(self) -> Actuators:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the API ----------------------------------------------------------------------------

    def current(self, members: Members | None = None) -> dict[str, float]:
        """Knob name → value in effect now (ladder values; readahead in KiB as read).

        ``members``: a snapshot of the job taken this interval (:meth:`Target.members`), shared
        with :meth:`follow` so the job's processes and threads are listed once per interval.
        """
        self._last = self._current(members if members is not None else self.target.members())
        return dict(self._last)

    def _current(self, m: Members, only: Iterable[Backend] | None = None) -> dict[str, float]:
        """The knobs in effect, read back; with ``only``, those backends' knobs are read and the
        others' taken from the last reading. A knob that cannot be read now (its processes have
        just exited) is left out, never given its reading from before the write."""
        values: dict[str, float] = {}
        if only is not None:
            ours = {id(b) for b in only}
            values = {
                k: v
                for k, v in self._last.items()
                if k not in self._backends or id(self._backends[k]) not in ours
            }
        for backend in self._unique_backends() if only is None else only:
            values.update(backend.read(m))
        values = {k.name: values[k.name] for k in KNOBS if k.name in values}  # table order
        if not m.loader_pids:  # no loader yet: what the next one will get
            for knob in ("weight.loader", "cpus.loader"):
                if knob in self._wanted:
                    values[knob] = self._wanted[knob]
        return values

    def inert(self, members: Members | None = None) -> dict[str, str]:
        """The knobs a change would act on nothing for now (:meth:`Backend.inert`), with why;
        disabled knobs are not listed (they are not changed at all)."""
        if not self._open or self._closing:
            return {}
        m = members if members is not None else self.target.members()
        out: dict[str, str] = {}
        for knob, backend in self._backends.items():
            if knob in self.disabled:
                continue
            why = backend.inert(knob, m)
            if not why and knob in _LOADER_CPU_KNOBS and not m.loader_pids:
                why = "the job has no loader processes"
            if why:
                out[knob] = why
        return out

    def same_effect(self, knob: str, a: float, b: float) -> bool:
        """Whether two ladder values of ``knob`` set the same thing on this node: CPU shares
        that grant the same CPUs (on 2 CPUs, 0.25 and 0.5 of them are both one CPU), else
        equal values."""
        if a == b:
            return True
        backend = self._backends.get(knob)
        cpus_for = getattr(backend, "cpus_for", None)
        return cpus_for is not None and cpus_for(knob, a) == cpus_for(knob, b)

    def defaults(self) -> dict[str, float]:
        """The values in effect when the session started."""
        return dict(self._defaults)

    def apply(self, action: Mapping[str, float], reason: str = "") -> dict[str, float]:
        """Set knobs to ladder values; returns the values in effect afterwards.

        Every value is checked against the knob table before anything is written.

        Raises:
            KnobRangeError: a value not on its knob's ladder (nothing is written then).
            UserError: an unknown knob, or a session that was never opened or was closed.

        After the target has exited everything is restored and this returns ``{}``.
        """
        checked = {by_name(k).name: by_name(k).check(float(v)) for k, v in action.items()}
        if self.target_exited:
            return {}
        if not self._open:
            raise UserError("the actuators are not open (use them in a `with` block)")
        if self._closing:
            return {}
        if not self.target.alive():
            self._target_gone()
            return {}
        m = self.target.members()
        written: dict[int, Backend] = {}
        for knob, value in checked.items():
            if knob in self.disabled:
                continue
            if self._wanted.get(knob, self._last.get(knob)) == value:
                continue  # no change: nothing to write, nothing to log
            role = by_name(knob).role
            old = self._last.get(knob)
            if self.dry_run:
                self._wanted[knob] = value
                self.log.record(Decision(knob, role, old, value, reason, SET, dry_run=True))
                continue
            backend = self._backends[knob]
            written[id(backend)] = backend
            try:
                detail = backend.set(knob, value, m)
            except Stuck as e:
                self._disable(knob, str(e), STUCK, None)
                continue
            self._wanted[knob] = value
            self.log.record(Decision(knob, role, old, value, reason, SET, detail=detail))
        if written:
            # What the writes changed; the other knobs are read back by the next follow().
            self._last = self._current(m, only=written.values())
        return dict(self._last)

    def follow(self, members: Members | None = None) -> None:
        """Once per interval: put new threads and processes under their role's settings, and give
        up knobs changed behind our back. Restores everything when the target has exited.

        ``members``: this interval's snapshot of the job, if the caller took one already."""
        if not self._open or self._closing:
            return
        if not self.target.alive():
            self._target_gone()
            return
        if self.dry_run:
            return
        m = members if members is not None else self.target.members()
        for backend in self._unique_backends():
            for notice in backend.follow(m):
                if notice.knob not in self.disabled:
                    self._disable(notice.knob, notice.reason, notice.event, notice.found)

    def _unique_backends(self) -> list[Backend]:
        return list({id(b): b for b in self._backends.values()}.values())

    def _disable(self, knob: str, why: str, event: str, found: float | None) -> None:
        self.disabled[knob] = why
        role = by_name(knob).role
        new = found if event == YIELD else self._wanted.get(knob)
        self.log.record(Decision(knob, role, self._last.get(knob), new, why, event))

    def _target_gone(self) -> None:
        self.target_exited = True
        self.close()

    # --- restore ----------------------------------------------------------------------------

    def close(self) -> None:
        """Restore every knob and clear this session from the journal (idempotent)."""
        if not self._open or self._closing:
            return
        self._closing = True
        try:
            if not self.dry_run:
                decisions = replay_record(self.journal.record)
                for d in decisions:
                    self.log.record(d)
                self._restore_open_files(decisions)
                if any(d.event == FAILED for d in decisions):
                    why = f"kept in {self.journal.path}: run `autotune restore`"
                    self.log.record(Decision("journal", Role.OTHER, None, None, why, FAILED))
                else:
                    self.journal.drop()
        finally:
            self._open = False
            atexit.unregister(self.close)
            self._give_back_signals()
            self._closing = False
        if self._pending_signal is not None:
            signum, self._pending_signal = self._pending_signal, None
            if not UNWINDING.is_set():
                self._raise_for(signum)

    def _restore_open_files(self, decisions: Sequence[Decision]) -> None:
        """The restored read-ahead for the files the job (still running, as a ``--pid``
        target may be) holds open on those disks too: they kept the value they were opened
        with (autotune.system.openfiles)."""
        if not self.settings.readahead_open_files:
            return
        disks = [
            Path(d.detail).parent.parent.name
            for d in decisions
            if d.knob == "readahead" and d.event == RESTORE and d.detail
        ]
        if not disks:
            return
        try:
            pids = self.target.members().all_pids
        except (OSError, UserError):
            return  # the job is gone: nothing holds the files
        refresh_readahead(pids, disks)

    def _take_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may; its owner then restores through close()
        for sig in SIGNALS:
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)

    def _give_back_signals(self) -> None:
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if UNWINDING.is_set():
            return  # already unwinding for an earlier one
        if self._closing:
            self._pending_signal = signum  # finish restoring first
            return
        self._raise_for(signum)

    @staticmethod
    def _raise_for(signum: int) -> None:
        UNWINDING.set()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)
