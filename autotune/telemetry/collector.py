"""The collector API: one :class:`~autotune.telemetry.sample.Sample` per call, from BPF or /proc.

::

    with ProgressServer() as progress:
        target = Target.launch(cmd, env=progress.env)
        with open_collector(target, progress=progress, interval_s=0.25) as col:
            s = col.sample()    # counters since the previous call (the first: since open)

The caller paces the intervals; :meth:`TelemetryCollector.sample` never blocks on them. With
``prefer_bpf`` (the default) the BPF programs are used when this process is root and bcc works
(sched, block and pagecache, see ``bpf/``); otherwise the /proc fallback
(:mod:`autotune.telemetry.procfs`) says so once, as a warning, and names what it cannot fill in
``Sample.missing``. ``require_bpf`` turns that fallback into an error instead.

Progress, the reward's source: when the job reports through :mod:`autotune.client` (it has sent
at least one report), ``progress_samples`` / ``progress_steps`` are what it reported in the
interval and ``progress_source`` is ``client``. Otherwise the proxy: ``progress_samples`` is the
trainer's on-CPU seconds in the interval (so its rate is on-CPU seconds per second: a data-bound
trainer that waits on its loaders runs less), ``progress_steps`` is 0 and ``progress_source`` is
``proxy``.

Major faults per role come from the scheduler program too (the kernel's software event for them,
:mod:`autotune.telemetry.programs`), or from each process's ``/proc/<pid>/stat`` where that event
cannot be attached (and in the fallback).

Roles follow fork and exit from the first interval: the kernel moves threads between roles as
they fork and exit (see ``bpf/sched.bpf.c``); the fallback walks the process tree every call.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Protocol

import numpy as np

from autotune.errors import NotPermitted, UserError
from autotune.roles import ROLE_INDEX, Role
from autotune.system.footprint import release_compiler_memory
from autotune.target import Members, Target
from autotune.telemetry import programs
from autotune.telemetry.block import BlockCollector
from autotune.telemetry.gpu import GpuCollector
from autotune.telemetry.loader import BpfUnavailable
from autotune.telemetry.pagecache import PageCacheCollector
from autotune.telemetry.procfs import DiskStats, ProcRoles
from autotune.telemetry.procread import MajorFaults
from autotune.telemetry.programs import READAHEAD_COUNTERS
from autotune.telemetry.progress import ProgressServer
from autotune.telemetry.sample import (
    BLOCK_COUNTERS,
    PROGRESS_CLIENT,
    PROGRESS_PROXY,
    BlockDeviceStats,
    C,
    Sample,
    zeros_hist,
)
from autotune.telemetry.sched import RECONCILE_S, SchedCollector, SchedReading

if TYPE_CHECKING:
    from autotune.telemetry.programs import Lease

log = logging.getLogger("autotune.telemetry")
# autotune.config's INTERVAL_MIN_MS and INTERVAL_MAX_MS, in seconds (not imported from there:
# that would load pydantic wherever a collector is used).
INTERVAL_MIN_S, INTERVAL_MAX_S = 0.05, 5.0
PAGECACHE_COUNTERS = frozenset({"pgcache_miss", *READAHEAD_COUNTERS})
_warned: set[str] = set()


def warn_once(message: str) -> None:
    """Log ``message`` as a warning the first time this process says it."""
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


class RoleSource(Protocol):
    """Per-role scheduler counters: :class:`SchedCollector` or :class:`ProcRoles`."""

    missing: frozenset[str]

    def read(self) -> SchedReading: ...

    def processes(self) -> dict[int, Role]: ...

    def reconcile(self, members: Members) -> None: ...

    def close(self) -> None: ...


class BlockSource(Protocol):
    """Per-device block I/O: :class:`BlockCollector` or :class:`DiskStats`."""

    missing: frozenset[str]

    def read(self) -> dict[str, BlockDeviceStats]: ...

    def close(self) -> None: ...


class TelemetryCollector:
    """An open collector; see the module docstring. Build it with :func:`open_collector`.

    Attributes:
        target: the job.
        source: ``bpf`` or ``proc`` (where the role counters come from).
        missing: what its samples cannot fill (``Sample.missing``).
    """

    def __init__(
        self,
        target: Target,
        *,
        source: str,
        roles: RoleSource,
        block: BlockSource,
        pagecache: PageCacheCollector | None,
        progress: ProgressServer | None,
        lease: Lease | None = None,
    ) -> None:
        self.target = target
        self._lease = lease
        self.source = source
        self._roles = roles
        self._block = block
        self._pagecache = pagecache
        self._progress = progress
        # Major faults: counted per role by the scheduler program where the kernel lets it.
        self._majflt = None if lease is not None and lease.programs.majflt else MajorFaults()
        self._gpu = GpuCollector()
        pc_missing = pagecache.missing if pagecache is not None else PAGECACHE_COUNTERS
        self.missing = frozenset(roles.missing | block.missing | pc_missing)
        self._ncpus = os.sysconf("SC_NPROCESSORS_ONLN")
        # The job's processes by role as of the last sample (the loop follows the job when they
        # change).
        self.processes_seen: dict[int, Role] = {}
        self._closed = False
        self._closer: threading.Thread | None = None
        self._last_t = self._last_reconcile = time.monotonic()

    def sample(self) -> Sample:
        """Telemetry since the previous call (the first: since open). Never blocks."""
        t = time.monotonic()
        sched = self._roles.read()
        roles = sched.roles
        if self._pagecache is not None:
            roles += self._pagecache.read()
        self.processes_seen = self._roles.processes()
        if self._majflt is not None:
            roles[:, C["majflt"]] = self._majflt.read(self.processes_seen)
        devices = self._block.read()
        block = np.zeros(len(BLOCK_COUNTERS), np.int64)
        lat = zeros_hist()
        for d in devices.values():
            block += d.counters
            lat += d.lat_hist
        s = Sample(
            t=t,
            t_wall=time.time(),
            interval_s=t - self._last_t,
            ncpus=self._ncpus,
            roles=roles,
            runq_hist=sched.runq_hist,
            block=block,
            block_lat_hist=lat,
            devices=devices,
            source=self.source,
            missing=self.missing,
        )
        self._fill_progress(s)
        s.gpu_present, s.gpu_util, s.gpu_mem = self._gpu.read()
        self._last_t = t
        if t - self._last_reconcile >= RECONCILE_S:
            self._roles.reconcile(self.target.members())
            self._last_reconcile = t
        return s

    def _fill_progress(self, s: Sample) -> None:
        counts = self._progress.take() if self._progress is not None else None
        if counts is not None and self._progress is not None and self._progress.ever_reported:
            s.progress_samples, s.progress_steps = counts.samples, counts.steps
            s.progress_span_s = counts.span_s
            s.progress_source = PROGRESS_CLIENT
        else:
            # The proxy: trainer on-CPU seconds (see the module docstring).
            s.progress_samples = float(s.roles[ROLE_INDEX[Role.TRAINER], C["oncpu_ns"]]) / 1e9
            s.progress_steps = 0.0
            s.progress_source = PROGRESS_PROXY

    def processes(self) -> dict[int, Role]:
        """The job's processes now, by role (as the role source tracks them)."""
        return self._roles.processes()

    def program_fds(self) -> dict[str, int]:
        """The loaded BPF programs' file descriptors by name (none for /proc).

        For measuring the programs' own run time, which the kernel keeps per program while
        ``kernel.bpf_stats_enabled`` is 1 (``run_time_ns`` in ``/proc/self/fdinfo/<fd>``).
        """
        out: dict[str, int] = {}
        for bpf in self._lease.programs.bpfs() if self._lease is not None else ():
            out.update({name.decode(): f.fd for name, f in bpf.funcs.items()})
        return out

    def alive(self) -> bool:
        """Whether the target still runs (the caller stops sampling when it does not)."""
        return self.target.alive()

    def close_in_background(self) -> None:
        """Begin :meth:`close` in a thread of its own, for a caller that reads no more samples
        and has other things to do before it leaves (it lets go of the programs, and the last
        job's detach hands the kernel's waits to a helper process: see the loader);
        :meth:`close` waits for it."""
        if self._closer is None and not self._closed:
            self._closer = threading.Thread(
                target=self.close, name="autotune-telemetry-close", daemon=True
            )
            self._closer.start()

    def close(self) -> None:
        """Let go of the job's telemetry (idempotent): its slot in the process's BPF programs,
        which the last job's collector detaches (:mod:`autotune.telemetry.programs`)."""
        closer = self._closer
        if closer is not None and closer is not threading.current_thread():
            closer.join()
            return
        if self._closed:
            return
        self._closed = True
        with contextlib.ExitStack() as stack:
            stack.callback(self._gpu.close)
            if self._majflt is not None:
                stack.callback(self._majflt.close)
            stack.callback(self._roles.close)
            stack.callback(self._block.close)
            if self._pagecache is not None:
                stack.callback(self._pagecache.close)
            if self._lease is not None:
                stack.callback(self._lease.release)

    def __enter__(self) -> TelemetryCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_interval(interval_s: float) -> None:
    if not INTERVAL_MIN_S <= interval_s <= INTERVAL_MAX_S:
        raise UserError(
            f"bad interval {interval_s * 1000:g} ms: allowed "
            f"{INTERVAL_MIN_S * 1000:g} to {INTERVAL_MAX_S * 1000:g} ms"
        )


def _open_bpf(target: Target, progress: ProgressServer | None) -> TelemetryCollector:
    """The BPF collectors; raises BpfUnavailable when the scheduler program cannot load."""
    lease = programs.lease()
    try:
        sched = SchedCollector(lease, target.members())
        progs = lease.programs
        block: BlockSource
        if progs.block is not None:
            block = BlockCollector(lease)
        else:
            warn_once(f"block I/O from /proc/diskstats, without latencies: {progs.block_error}")
            block = DiskStats()
        pagecache: PageCacheCollector | None = None
        if progs.pagecache is not None:
            pagecache = PageCacheCollector(lease)
        else:
            warn_once(f"no page-cache or readahead counters: {progs.pagecache_error}")
        # A second pass closes the window between reading /proc and seeding the table, in which
        # a fork by a not-yet-seeded parent went unseen.
        sched.reconcile(target.members())
    except BaseException:
        lease.release()
        raise
    if lease.compiled:
        # The compiler is done: its ~110 MB of pages and freed heap go
        # (autotune.system.footprint).
        release_compiler_memory()
    return TelemetryCollector(
        target,
        source="bpf",
        roles=sched,
        block=block,
        pagecache=pagecache,
        progress=progress,
        lease=lease,
    )


def open_collector(
    target: Target,
    progress: ProgressServer | None = None,
    interval_s: float = 0.25,
    prefer_bpf: bool = True,
    require_bpf: bool = False,
) -> TelemetryCollector:
    """Open the telemetry of ``target``.

    Args:
        target: the job (its roles are seeded from its process tree now).
        progress: the job's progress channel; without one (or until the job reports) the
            progress proxy is used.
        interval_s: the control interval the caller will sample at (0.05 to 5 s).
        prefer_bpf: use BPF when it works; False goes straight to /proc.
        require_bpf: fail instead of falling back to /proc.

    Raises:
        UserError: a bad interval, a target that is not running, or BPF required but
            unavailable (:class:`~autotune.errors.NotPermitted` when it is for want of root).
    """
    _check_interval(interval_s)
    if not target.alive():
        raise UserError(f"target {target.description} is not running")
    if prefer_bpf or require_bpf:
        try:
            return _open_bpf(target, progress)
        except BpfUnavailable as e:
            if require_bpf:
                error = NotPermitted if os.geteuid() != 0 else UserError
                raise error(f"BPF telemetry unavailable: {e}") from e
            warn_once(
                f"BPF telemetry unavailable ({e}); using /proc, without run-queue and block "
                "latency histograms or page-cache counters"
            )
    return TelemetryCollector(
        target,
        source="proc",
        roles=ProcRoles(target),
        block=DiskStats(),
        pagecache=None,
        progress=progress,
    )
