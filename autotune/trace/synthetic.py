"""Synthetic Samples, for benchmarks and tests of the trace format only: never telemetry.

Every field is filled with seeded random counts of a plausible size, so that a trace of them
compresses like a real one rather than like zeros.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from autotune.knobs import KNOBS
from autotune.roles import ROLES
from autotune.telemetry.sample import (
    BLOCK_COUNTERS,
    N_SLOTS,
    PROGRESS_CLIENT,
    ROLE_COUNTERS,
    BlockDeviceStats,
    Sample,
)


def samples(
    n: int,
    *,
    seed: int = 0,
    interval_s: float = 0.25,
    devices: tuple[str, ...] = ("vda", "loop0"),
    missing: frozenset[str] = frozenset(),
) -> Iterator[Sample]:
    """``n`` synthetic consecutive intervals.

    Args:
        n: how many.
        seed: random seed (the same seed gives the same samples).
        interval_s: each interval's length.
        devices: block device names to fill per-device stats for.
        missing: names to mark as not measured (see ``Sample.missing``).
    """
    rng = np.random.default_rng(seed)
    t0, wall0 = time.monotonic(), time.time()
    knobs: dict[str, float] = {}
    for i in range(n):
        s = Sample(
            t=t0 + (i + 1) * interval_s,
            t_wall=wall0 + (i + 1) * interval_s,
            interval_s=interval_s,
            ncpus=2,
        )
        s.roles[:] = rng.integers(0, 1 << 20, (len(ROLES), len(ROLE_COUNTERS)))
        # Run-queue latencies cluster at a few µs to ms, as on a loaded node.
        s.runq_hist[:] = rng.poisson(
            rng.uniform(0, 50, (len(ROLES), 1))
            * np.exp(-0.5 * ((np.arange(N_SLOTS) - 6) / 2.5) ** 2)
        )
        for name in devices:
            d = BlockDeviceStats()
            d.counters[:] = rng.integers(0, 1 << 24, len(BLOCK_COUNTERS))
            d.lat_hist[:] = rng.poisson(3.0, N_SLOTS)
            s.devices[name] = d
        s.block[:] = sum(
            (d.counters for d in s.devices.values()), np.zeros(len(BLOCK_COUNTERS), np.int64)
        )
        s.block_lat_hist[:] = sum(
            (d.lat_hist for d in s.devices.values()), np.zeros(N_SLOTS, np.int64)
        )
        s.progress_samples = float(rng.integers(0, 512))
        s.progress_steps = float(rng.integers(0, 8))
        s.progress_source = PROGRESS_CLIENT
        if i % 20 == 0:  # knobs change now and then, as when exploring
            knobs = {k.name: k.ladder[int(rng.integers(0, k.levels))] for k in KNOBS}
        s.knobs = dict(knobs)
        s.source = "bpf"
        s.missing = missing
        yield s
