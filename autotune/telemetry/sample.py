"""One control interval of telemetry: the raw counters every collector fills.

A :class:`Sample` is what the BPF collectors (or the /proc fallback, or the replay model) produce
once per interval, and what :mod:`autotune.features` turns into the observation and the trace
writer into a row. Per-role counters are one small array (rows: :data:`autotune.roles.ROLES`,
columns: :data:`ROLE_COUNTERS`) so that producing and featurizing a sample stays cheap (the
replay env does it ~10,000 times a second).

Histograms are log2 in microseconds: slot 0 counts latencies below 2 µs, slot ``i`` those in
``[2**i, 2**(i+1))`` µs, and the last slot everything from ``2**(N_SLOTS-1)`` µs (≈8.4 s) up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from autotune.roles import ROLE_INDEX, ROLES, Role

N_SLOTS = 24
PAGE_KIB = 4  # readahead tracepoints count pages

ROLE_COUNTERS: tuple[str, ...] = (
    "oncpu_ns",  # time on a CPU
    "runq_wait_ns",  # time runnable but waiting for a CPU (wakeup or preemption → on-CPU)
    "nvcsw",  # voluntary context switches (blocked)
    "nivcsw",  # involuntary context switches (preempted while runnable)
    "migrations",  # moves between CPUs
    "threads",  # threads alive at the end of the interval
    "pgcache_miss",  # pages inserted into the page cache by the role (misses)
    "ra_sync",  # synchronous readahead events
    "ra_sync_pages",  # pages they asked for
    "ra_async",  # asynchronous readahead events
    "ra_async_pages",
    "majflt",  # major page faults
)
C: dict[str, int] = {name: i for i, name in enumerate(ROLE_COUNTERS)}

BLOCK_COUNTERS: tuple[str, ...] = ("read_bytes", "read_reqs", "write_bytes", "write_reqs")
B: dict[str, int] = {name: i for i, name in enumerate(BLOCK_COUNTERS)}

# Where a sample's progress came from.
PROGRESS_CLIENT = "client"  # the job reports samples/steps through autotune.client
PROGRESS_PROXY = "proxy"  # no client: trainer on-CPU seconds per second (see features)
PROGRESS_NONE = "none"

Counts = npt.NDArray[np.int64]


def zeros_roles() -> Counts:
    return np.zeros((len(ROLES), len(ROLE_COUNTERS)), dtype=np.int64)


def zeros_hist(rows: int | None = None) -> Counts:
    shape = (N_SLOTS,) if rows is None else (rows, N_SLOTS)
    return np.zeros(shape, dtype=np.int64)


@dataclass
class BlockDeviceStats:
    """One block device's I/O in the interval."""

    counters: Counts = field(default_factory=lambda: np.zeros(len(BLOCK_COUNTERS), np.int64))
    lat_hist: Counts = field(default_factory=zeros_hist)


@dataclass
class Sample:
    """Telemetry of one control interval.

    Attributes:
        t: end of the interval, seconds on the monotonic clock.
        t_wall: end of the interval, Unix time.
        interval_s: measured length of the interval.
        ncpus: online CPUs (features normalize by it so policies move between node sizes).
        roles: counters, shape ``(len(ROLES), len(ROLE_COUNTERS))``.
        runq_hist: run-queue latency histograms, shape ``(len(ROLES), N_SLOTS)``.
        block: block I/O summed over the devices below, shape ``(len(BLOCK_COUNTERS),)``.
        block_lat_hist: block request latency histogram (issue → complete), summed likewise.
        devices: per-device block I/O, by device name.
        progress_samples: samples the job processed in the interval.
        progress_steps: optimizer steps in the interval.
        progress_source: ``client``, ``proxy`` or ``none``.
        progress_span_s: for ``client`` progress, the seconds from the job's last report before
            the interval to its last one in it (the time the counted work took); None when the
            interval had no report or none came before it.
        gpu_present: whether NVML saw a GPU; when False the two GPU fields are meaningless.
        gpu_util: mean GPU utilization, 0..1.
        gpu_mem: GPU memory used, fraction of total.
        knobs: knob name → value in effect during the interval.
        source: ``bpf`` or ``proc`` (the fallback collector).
        missing: counter names the collector could not fill (stored as NULL, never zero).
    """

    t: float
    t_wall: float
    interval_s: float
    ncpus: int
    roles: Counts = field(default_factory=zeros_roles)
    runq_hist: Counts = field(default_factory=lambda: zeros_hist(len(ROLES)))
    block: Counts = field(default_factory=lambda: np.zeros(len(BLOCK_COUNTERS), np.int64))
    block_lat_hist: Counts = field(default_factory=zeros_hist)
    devices: dict[str, BlockDeviceStats] = field(default_factory=dict)
    progress_samples: float = 0.0
    progress_steps: float = 0.0
    progress_source: str = PROGRESS_NONE
    progress_span_s: float | None = None
    gpu_present: bool = False
    gpu_util: float = 0.0
    gpu_mem: float = 0.0
    knobs: dict[str, float] = field(default_factory=dict)
    source: str = "bpf"
    missing: frozenset[str] = frozenset()

    def get(self, role: Role, counter: str) -> int:
        """One role's counter."""
        return int(self.roles[ROLE_INDEX[role], C[counter]])
