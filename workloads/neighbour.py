"""The noisy neighbour: ``stress-ng --cpu N`` competing for the cores (steadily, or in spells that
come and go), always stopped after."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

from autotune.errors import UserError
from autotune.target import descendants, stat_fields
from workloads import spells

STOP_WAIT_S = 5.0


class Neighbour:
    """``stress-ng --cpu <cpus>`` in a process group of its own; use as a context manager.

    Entering waits until its workers run, so the job starts beside a neighbour at full strength;
    leaving stops the whole group (SIGTERM, then SIGKILL) and reaps it.
    """

    def __init__(self, cpus: int = 2) -> None:
        if cpus < 1:
            raise UserError(f"the neighbour needs at least one CPU hog, got {cpus}")
        self.cpus = cpus
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Neighbour:
        if shutil.which("stress-ng") is None:
            raise UserError("stress-ng is not installed (scripts/bootstrap.sh installs it)")
        self.proc = subprocess.Popen(
            ["stress-ng", "--cpu", str(self.cpus), "--quiet"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own group: stopped together, spared our Ctrl-C
        )
        deadline = time.monotonic() + 5.0
        while len(descendants(self.proc.pid)) < self.cpus:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise UserError("stress-ng did not start its CPU workers")
            time.sleep(0.02)
        return self

    def pids(self) -> list[int]:
        """The neighbour's processes (stress-ng and its workers)."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        return [self.proc.pid, *descendants(self.proc.pid)]

    def stop(self) -> None:
        """Stop every process of the neighbour's group; safe to call twice."""
        if self.proc is None:
            return
        stop_group(self.proc)
        self.proc = None

    def __enter__(self) -> Neighbour:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop the process group led by ``proc``: SIGTERM, SIGKILL if it lingers; reap ``proc``.

    Returns once no process of the group is left, so that files they held (on a data disk about
    to be unmounted, say) are closed.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break  # the whole group is gone
        deadline = time.monotonic() + STOP_WAIT_S
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader: a zombie still counts as a member
            if not _group_alive(proc.pid):
                return
            time.sleep(0.02)
    proc.poll()


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs. A zombie does not count: it holds no file, and
    an orphan's is reaped by init only about once a second on this machine."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = stat_fields(int(entry.name))
        if fields is not None and int(fields[2]) == pgid and fields[0] not in "ZX":
            return True
    return False


class OnOffNeighbour:
    """A neighbour that comes and goes: ``stress-ng --cpu <cpus>`` in seeded spells.

    Spells alternate ``on`` (the hogs run) and ``off`` (none runs), starting ``on``, each
    uniformly ``spell_s`` seconds long, drawn by :func:`workloads.spells.schedule` from
    ``seed``: the same seed, the same schedule in every run. Entering starts the first spell
    (the job starts beside a neighbour at full strength); a thread keeps the schedule; leaving
    stops it and every hog. :attr:`history` lists ``(seconds since start, spell)`` as each began;
    :meth:`poll` hands the spells begun since the last call to the caller's thread (an oracle
    that switches knobs at the boundaries).
    """

    def __init__(
        self, cpus: int = 2, seed: int = 0, spell_s: tuple[float, float] = (10.0, 40.0)
    ) -> None:
        if cpus < 1:
            raise UserError(f"the neighbour needs at least one CPU hog, got {cpus}")
        self.cpus = cpus
        self.seed = seed
        self.spell_s = spell_s
        self.history: list[tuple[float, spells.Spell]] = []
        self.error: UserError | None = None
        self._hog: Neighbour | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._polled = 0
        self._t0 = 0.0

    def start(self) -> OnOffNeighbour:
        plan = spells.schedule(self.seed, ("on", "off"), *self.spell_s)
        self._t0 = time.monotonic()
        first = next(plan)
        self._begin(first)
        self._thread = threading.Thread(
            target=self._keep, args=(plan, self._t0 + first.length), daemon=True
        )
        self._thread.start()
        return self

    def _keep(self, plan: Iterator[spells.Spell], end: float) -> None:
        while not self._stopping.wait(max(0.0, end - time.monotonic())):
            spell = next(plan)
            try:
                self._begin(spell)
            except UserError as e:
                self.error = e  # the owner's thread raises it (poll)
                return
            end += spell.length

    def _begin(self, spell: spells.Spell) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            if spell.kind == "on":
                self._hog = Neighbour(self.cpus).start()
            elif self._hog is not None:
                self._hog.stop()
                self._hog = None
            self.history.append((time.monotonic() - self._t0, spell))

    def poll(self) -> list[spells.Spell]:
        """The spells begun since the last call, oldest first.

        Raises:
            UserError: the neighbour could not be started for a spell.
        """
        if self.error is not None:
            raise self.error
        with self._lock:
            new = [s for _, s in self.history[self._polled :]]
            self._polled = len(self.history)
        return new

    def running(self) -> bool:
        """Whether the hogs run now."""
        with self._lock:
            return self._hog is not None

    def pids(self) -> list[int]:
        """The neighbour's processes now (none during an ``off`` spell)."""
        with self._lock:
            return self._hog.pids() if self._hog is not None else []

    def stop(self) -> None:
        """End the schedule and stop every hog; safe to call twice."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            if self._hog is not None:
                self._hog.stop()
                self._hog = None

    def __enter__(self) -> OnOffNeighbour:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
