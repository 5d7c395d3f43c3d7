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
