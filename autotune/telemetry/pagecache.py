"""Page-cache misses and readahead per role, from ``bpf/pagecache.bpf.c``.

Fills the role counters ``pgcache_miss``, ``ra_sync``, ``ra_sync_pages``, ``ra_async`` and
``ra_async_pages``. The program takes each task's role and job slot from the scheduler program's
role table and counts per slot and role; this collector is one job's view
(:func:`autotune.telemetry.sched.fold`). Major faults are not counted here but by the scheduler
program (``bpf/sched.bpf.c``, on the kernel's major-fault software event).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from autotune.roles import ROLES
from autotune.telemetry import bpfmaps
from autotune.telemetry.reading import memo
from autotune.telemetry.sample import ROLE_COUNTERS, Counts
from autotune.telemetry.sched import fold

if TYPE_CHECKING:
    from autotune.telemetry.programs import Lease

_CELLS = bpfmaps.JOB_SLOTS * len(ROLES)


class PageCacheCollector:
    """One job's page-cache counters, read per interval from its lease's loaded program.

    Attributes:
        missing: the counters this kernel cannot give (its readahead tracepoints came in 6.x).
    """

    def __init__(self, lease: Lease) -> None:
        progs = lease.programs
        if progs.pagecache is None:
            raise ValueError("the page-cache program is not loaded")
        self.slot = lease.slot
        self._key = progs.roles_table
        self.missing: frozenset[str] = progs.pagecache_missing
        self._counters = progs.pagecache.get_table(b"counters")
        self._prev = self._cumulative()

    def _cumulative(self) -> Counts:
        words = _CELLS * len(ROLE_COUNTERS)
        return bpfmaps.read_percpu(self._counters, words).view(np.int64).sum(axis=0)

    def read(self) -> Counts:
        """Counters since the previous read, shape ``(len(ROLES), len(ROLE_COUNTERS))``."""
        c = memo((self._key, "pagecache"), self._cumulative)
        out = fold((c - self._prev).reshape(_CELLS, len(ROLE_COUNTERS)), self.slot)
        self._prev = c
        return out

    def close(self) -> None:
        """Nothing to do: the program goes with the last lease."""
