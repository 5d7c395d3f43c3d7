"""The job's progress rate: the reward's unit offline and online, and the guard's yardstick."""

from __future__ import annotations

from autotune.roles import ROLE_INDEX, Role
from autotune.telemetry.sample import PROGRESS_CLIENT, C, Sample

_T = ROLE_INDEX[Role.TRAINER]


def progress_rate(s: Sample) -> float:
    """Progress per second of one sample: the job's reports, else the trainer-CPU proxy."""
    dt = max(s.interval_s, 1e-6)
    if s.progress_source == PROGRESS_CLIENT:
        return (s.progress_samples or s.progress_steps) / dt
    return float(s.roles[_T, C["oncpu_ns"]]) / 1e9 / dt
