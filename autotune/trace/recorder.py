"""The recording loop: one Sample per interval, with the knobs in effect, into a trace.

The loop is paced on the monotonic clock (a late interval does not shift the ones after it) and
ends when the target exits, when ``duration_s`` has passed, or when :attr:`Recording.stop` is set
(by a signal handler). The collector, the source of knob values and the display are passed in,
so the same loop records with BPF or /proc, with or without exploring.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from autotune.system.priority import normal, realtime
from autotune.telemetry.sample import Sample
from autotune.trace.writer import TraceWriter

log = logging.getLogger("autotune.trace")

# Rows in a row that take longer than the interval before a real-time sampling thread goes back to
# the normal scheduler: a loop that cannot keep its interval would otherwise run back to back at
# SCHED_FIFO, and the kernel's throttling still leaves it 95 % of a CPU.
OVERRUNS_BEFORE_NORMAL = 3


class Collector(Protocol):
    """What the loop needs of :func:`autotune.telemetry.collector.open_collector`'s result."""

    def sample(self) -> Sample: ...


class Alive(Protocol):
    """What the loop needs of :class:`autotune.target.Target`."""

    def alive(self) -> bool: ...


class KnobSource(Protocol):
    """Where the knob values in effect come from (read back, or the explorer)."""

    def in_effect(self) -> dict[str, float]: ...

    def advance(self, now: float) -> None: ...


class ReadBack:
    """Knob values read from the system each interval; changes nothing.

    Args:
        read: a function returning the knob values in effect now (``read_knobs`` bound to the
            target and the progress channel).
    """

    def __init__(self, read: Callable[[], dict[str, float]]) -> None:
        self._read = read

    def in_effect(self) -> dict[str, float]:
        return self._read()

    def advance(self, now: float) -> None:
        """Nothing to move: recording without exploring leaves the knobs alone."""


@dataclass
class Ending:
    """Why and when a recording ended."""

    reason: str  # "target exited", "duration", "stopped"
    rows: int
    elapsed_s: float


@dataclass
class Recording:
    """One recording's loop.

    Attributes:
        writer: the trace, begun.
        collector: the open collector.
        target: the job.
        knobs: where the knob values in effect come from.
        interval_s: control interval.
        duration_s: stop after this long (None: until the target exits or a signal).
        on_row: called with each sample after it is written (the live display).
        stop: set it (from a signal handler, say) to end after the current interval.
        rt_priority: the loop's thread runs at this ``SCHED_FIFO`` priority while it records
            (:mod:`autotune.system.priority`; 0: the normal scheduler).
    """

    writer: TraceWriter
    collector: Collector
    target: Alive
    knobs: KnobSource
    interval_s: float
    duration_s: float | None = None
    on_row: Callable[[Sample], None] | None = None
    stop: threading.Event | None = None
    rt_priority: int = 0

    def run(self) -> Ending:
        """Record until the target exits, the duration passes or :attr:`stop` is set."""
        with realtime(self.rt_priority) as raised:
            return self._loop(raised)

    def _loop(self, realtime_now: bool = False) -> Ending:
        stop = self.stop or threading.Event()
        start = time.monotonic()
        tick = 0
        overruns = 0
        reason = "stopped"
        while True:
            tick += 1
            deadline = start + tick * self.interval_s
            if self.duration_s is not None:
                deadline = min(deadline, start + self.duration_s)
            stop.wait(max(0.0, deadline - time.monotonic()))
            woke = time.monotonic()
            sample = self.collector.sample()
            sample.knobs = self.knobs.in_effect()
            self.writer.append(sample)
            if self.on_row is not None:
                self.on_row(sample)
            now = time.monotonic()
            overruns = overruns + 1 if now - woke > self.interval_s else 0
            if realtime_now and overruns >= OVERRUNS_BEFORE_NORMAL:
                normal()
                realtime_now = False
                log.warning(
                    "autotune: %d rows in a row took longer than the %.0f ms interval; the "
                    "sampling thread leaves real-time priority (a longer --interval keeps it)",
                    overruns,
                    self.interval_s * 1000,
                )
            # The last sample already covers the target's end, the deadline, or the signal.
            if not self.target.alive():
                reason = "target exited"
                break
            if self.duration_s is not None and now - start >= self.duration_s - 1e-3:
                reason = "duration"
                break
            if stop.is_set():
                break
            self.knobs.advance(now)
            # A long stall (a suspended VM, say) is not caught up with a burst of rows.
            tick = max(tick, int((now - start) / self.interval_s))
        return Ending(reason=reason, rows=self.writer.rows, elapsed_s=time.monotonic() - start)
