"""Back this process's own anonymous memory with huge pages (``MADV_COLLAPSE``), for a daemon
that wakes a few times a second.

Measured on this project's VMs (Firecracker, shared host): the first touch of a 4 KiB page after a
sleep costs microseconds, in proportion to how long the process slept (about 0.7-5 µs per page
after 250 ms, against 0.01 µs awake), and it is charged to the process as CPU time. A Python
control loop touches ~2,000 distinct pages per pass (its objects lie scattered through a heap the
imports built), so the wake, not the work, was most of the tuner's CPU. Collapsing the heap into
2 MiB pages once makes each of those regions one translation: the tuner's CPU beside the quiet
cnn job (workloads, 3-4 interleaved repeats of tuned sessions with and without it, one
invocation each) fell by 10-25 %. The collapse itself costs about 0.6 s of CPU, so a tuning
session does it once it has run two minutes (autotune.daemon.session.HUGEPAGES_AFTER_S), from a
thread at the lowest priority, not at its start beside the job's own start-up.

``MADV_COLLAPSE`` (Linux 6.1) is synchronous and does not depend on the THP sysfs mode (except
``never``); it only merges pages already present, so memory use grows by at most the holes of
the 2 MiB ranges it fills. Where the kernel lacks it, or a range cannot be collapsed, nothing
happens: this is an optimisation, never a requirement.
"""

from __future__ import annotations

import logging
from pathlib import Path

from autotune.system.libc import libc

log = logging.getLogger("autotune.system")

MADV_COLLAPSE = 25
HUGE = 2 << 20
MAPS = Path("/proc/self/maps")


def _ranges(maps_text: str) -> list[tuple[int, int]]:
    """The 2 MiB-aligned parts of this process's private, writable, anonymous mappings
    (``[heap]`` and unnamed ones; not stacks, files or special mappings)."""
    out = []
    for line in maps_text.splitlines():
        fields = line.split()
        if len(fields) < 5 or not fields[1].startswith("rw") or fields[1][3] != "p":
            continue
        name = fields[5] if len(fields) > 5 else ""
        if name not in {"", "[heap]"}:
            continue
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        start, end = (lo + HUGE - 1) & ~(HUGE - 1), hi & ~(HUGE - 1)
        if end > start:
            out.append((start, end))
    return out


def collapse_heap() -> int:
    """Collapse this process's anonymous memory into huge pages where the kernel can.

    Returns:
        MiB now in huge pages by this call (0 where the kernel cannot, or nothing qualified).
    """
    try:
        madvise = libc().madvise
        text = MAPS.read_text()
    except OSError as e:
        log.debug("huge pages: %s", e)
        return 0
    done = 0
    for start, end in _ranges(text):
        for at in range(start, end, HUGE):
            # A failure (EINVAL: no MADV_COLLAPSE, or memory THP cannot take; EAGAIN, ENOMEM:
            # no free huge page now) leaves those 2 MiB as they were.
            if madvise(at, HUGE, MADV_COLLAPSE) == 0:
                done += HUGE
    log.debug("huge pages: %d MiB of the heap collapsed", done >> 20)
    return done >> 20
