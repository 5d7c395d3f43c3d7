"""Page-cache misses and readahead per role, from ``bpf/pagecache.bpf.c``.

Fills the role counters ``pgcache_miss``, ``ra_sync``, ``ra_sync_pages``, ``ra_async`` and
``ra_async_pages``. Roles come from the scheduler program's role table, so
:class:`~autotune.telemetry.sched.SchedCollector` must be open first and closed last. Major faults
are not counted here: the collector reads ``majflt`` from ``/proc/<pid>/stat`` (see
:mod:`autotune.telemetry.procfs`).
"""

from __future__ import annotations

import numpy as np

from autotune.roles import ROLES
from autotune.telemetry import bpfmaps
from autotune.telemetry.loader import load
from autotune.telemetry.sample import ROLE_COUNTERS, Counts

READAHEAD_EVENTS = (
    "page_cache_sync_ra",
    "page_cache_async_ra",
    "page_cache_ra_order",
    "page_cache_ra_unbounded",
)
READAHEAD_COUNTERS = ("ra_sync", "ra_sync_pages", "ra_async", "ra_async_pages")
_WORDS = len(ROLES) * len(ROLE_COUNTERS)


class PageCacheCollector:
    """Loads ``pagecache.bpf.c`` and reads its counters per interval.

    Args:
        roles_table: the name the open :class:`~autotune.telemetry.sched.SchedCollector` gave
            its role table (``roles_table``).

    Attributes:
        missing: the counters this kernel cannot give (its readahead tracepoints came in 6.x).

    Raises:
        BpfUnavailable: the program failed to load.
    """

    def __init__(self, roles_table: str) -> None:
        flags = bpfmaps.cflags()
        has_ra = all(bpfmaps.tracepoint_has("readahead", e) for e in READAHEAD_EVENTS)
        if has_ra:
            flags.append("-DHAVE_READAHEAD_TP")
        self.missing: frozenset[str] = frozenset() if has_ra else frozenset(READAHEAD_COUNTERS)
        self.bpf = load("pagecache", flags, rename={bpfmaps.ROLES_TABLE: roles_table})
        self._closed = False
        self._counters = self.bpf.get_table(b"counters")
        self._prev = self._cumulative()

    def _cumulative(self) -> Counts:
        return bpfmaps.read_percpu(self._counters, _WORDS).view(np.int64).sum(axis=0)

    def read(self) -> Counts:
        """Counters since the previous read, shape ``(len(ROLES), len(ROLE_COUNTERS))``."""
        c = self._cumulative()
        out = (c - self._prev).reshape(len(ROLES), len(ROLE_COUNTERS))
        self._prev = c
        return out

    def close(self) -> None:
        """Detach the program (idempotent)."""
        if not self._closed:
            self._closed = True
            self.bpf.cleanup()
