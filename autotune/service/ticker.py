"""Every job's tuning loop stepped in the service's own wake, one job after the other.

Each job under the service has a worker thread of its own for what may block (attaching, the
BPF compile, restoring at the end), but its intervals run in the service's loop: once per
interval the service lists the slice, calls :meth:`Ticker.step_all` (each loop's
:meth:`~autotune.daemon.loop.TuneLoop.step` in turn) and publishes its state, in one wake of one
thread. Measured on this 2-CPU VM with ten light jobs (docs/service.md): sampling and featurizing
a job cost 0.93 ms of CPU when each job woke on its own and 0.36 ms when all ran in one wake,
where the interpreter's code and the kernel's caches stay warm from one job to the next (on this
VM a process that wakes pays for the memory it touches). Ten threads woken at the same instant
cost more than either: they queue for the GIL.

A loop that ends (its job ended, its telemetry stopped, it was asked to stop, or it raised) is
taken off and its worker is woken with the outcome, to finish and restore in its own thread.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from autotune.telemetry.reading import one_reading

if TYPE_CHECKING:
    from autotune.daemon.loop import TuneLoop

log = logging.getLogger("autotune.service")


@dataclass
class Entry:
    """A loop in the ticker, and how it ended."""

    loop: TuneLoop
    done: threading.Event = field(default_factory=threading.Event)
    ended: str = ""
    error: BaseException | None = None


class Ticker:
    """The loops of the service's jobs, stepped by :meth:`step_all` (see the module docstring).

    Thread-safe: workers add their loops from their own threads.
    """

    def __init__(self) -> None:
        self._entries: list[Entry] = []
        self._lock = threading.Lock()
        self._closed = False

    def add(self, loop: TuneLoop) -> Entry:
        """Step ``loop`` from the next :meth:`step_all` on; wait on the entry's ``done`` for its
        end (at once, as stopped, when the ticker is closed)."""
        loop.begin()
        entry = Entry(loop)
        with self._lock:
            closed = self._closed
            if not closed:
                self._entries.append(entry)
        if closed:
            self._end(entry, "stopped")
        return entry

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def step_all(self) -> None:
        """One interval of every loop; a loop asked to stop is ended instead."""
        with self._lock:
            entries = list(self._entries)
        with one_reading():  # the node-wide counters read once for every job
            for e in entries:
                self._step_one(e)

    def _step_one(self, e: Entry) -> None:
        if e.loop.stopping:
            self._end(e, "stopped")
            return
        try:
            why = e.loop.step()
        except BaseException as exc:  # handed to the job's worker, which says it and restores
            log.debug("a job's loop failed", exc_info=True)
            e.error = exc
            why = "error"
        if why is not None:
            self._end(e, why)

    def close(self) -> None:
        """End every loop still here as stopped; later loops end at once."""
        with self._lock:
            self._closed = True
            entries, self._entries = self._entries, []
        for e in entries:
            self._end(e, "stopped")

    def _end(self, e: Entry, why: str) -> None:
        with self._lock:
            if e in self._entries:
                self._entries.remove(e)
        e.ended = why
        e.done.set()
