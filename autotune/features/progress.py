"""The job's progress rate: the reward's unit offline and online, and the guard's yardstick."""

from __future__ import annotations

from autotune.roles import ROLE_INDEX, Role
from autotune.telemetry.sample import PROGRESS_CLIENT, C, Sample

_T = ROLE_INDEX[Role.TRAINER]


def progress_rate(s: Sample) -> float:
    """Progress per second of one sample: the job's reports, else the trainer-CPU proxy.

    The job's reports are divided by the time between the reports that bound them
    (``progress_span_s``) where it is known and at least half the interval: a job reports as
    its batches end, and the count over the interval itself moves by whole batches (cnn
    alternated 384 and 448 samples/s at a steady ~420, which kept the guard's warm-up at its
    5 s limit before its interval of the mean rate came within 5 %).
    """
    dt = max(s.interval_s, 1e-6)
    if s.progress_source == PROGRESS_CLIENT:
        done = s.progress_samples or s.progress_steps
        span = s.progress_span_s
        if span is not None and span >= 0.5 * dt:
            return done / span
        return done / dt
    return float(s.roles[_T, C["oncpu_ns"]]) / 1e9 / dt


class StartupProxy:
    """The proxy rate (the trainer's on-CPU seconds per second) read from ``/proc`` while the
    BPF telemetry is not up yet: `autotune tune` starts its job at once and compiles its
    programs beside it (a second or two beside a busy neighbour), and the guard's warm-up at
    default knobs runs on these rates meanwhile instead of after (the policy's first change
    came 2.5 s after the telemetry, 4.9 s into cnn_noisy's start at default knobs).

    ``utime + stime`` of the job's root processes (``/proc/<pid>/stat``: every thread's, the
    ended ones' too), in clock ticks, the trainer's on-CPU time that the telemetry's
    ``oncpu_ns`` counts in nanoseconds. Call :meth:`poll` often (every 50 ms); it takes a rate
    once an interval has passed.
    """

    def __init__(self, pids: list[int], interval_s: float) -> None:
        import time

        self._pids = list(pids)
        self._interval_s = interval_s
        self._clock = time.monotonic
        self._t = self._clock()
        self._cpu = self._cpu_s()
        self.rates: list[float] = []

    def _cpu_s(self) -> float | None:
        from autotune.telemetry import procread

        total = 0
        for pid in self._pids:
            ns = procread.process_cpu_ns(pid)
            if ns is None:
                return None  # gone: no rate from a partial sum
            total += ns
        return total / 1e9

    def poll(self) -> None:
        """Take a rate if an interval has passed since the last."""
        now = self._clock()
        if now - self._t < self._interval_s:
            return
        cpu = self._cpu_s()
        if cpu is not None and self._cpu is not None:
            self.rates.append((cpu - self._cpu) / (now - self._t))
        self._t, self._cpu = now, cpu
