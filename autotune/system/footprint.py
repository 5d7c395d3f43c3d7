"""Give back what compiling the BPF programs left in this process, once they are loaded.

bcc compiles each program with clang and LLVM inside the calling process. Measured on this
project's VM (`bench/daemon/footprint.py`, and the test of this module): a tuner's resident set
goes from ~52 MB after its imports to ~182 MB once its telemetry is loaded, and stays there
although nothing runs the compiler again. Of those 130 MB:

* ~81 MB are pages of ``libLLVM`` and ``libclang-cpp`` (the compiler's code and read-only data)
  that the compile touched. They are clean file pages: the page cache holds them, and a later
  compile finds them there (a minor fault each). ``MADV_DONTNEED`` takes them out of this
  process's page tables.
* ~35 MB is heap the compiler freed but glibc kept; ``malloc_trim`` returns it to the kernel.

The tuner's own work (reading the BPF maps through libbcc, the policy, the actuators) touches
none of the compiler's pages, so they do not come back. This is what compiling in a short-lived
child would save (the issue's suggestion) without a second process: bcc's Python tables need the
module that loaded them in this process.

Only mappings that are safe to drop are touched: a compiler library's private mappings that are
not writable *and* hold no anonymous (copied-on-write) page. A library's RELRO segment is
read-only but was written by the dynamic linker's relocations before it became so: its pages
are anonymous copies, and dropping them would bring back the file's unrelocated bytes. Those
are skipped, as is every writable mapping.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from autotune.fsutil import read_small
from autotune.system.libc import libc

log = logging.getLogger("autotune.system")

MADV_DONTNEED = 4
SMAPS = Path("/proc/self/smaps")
STATUS = "/proc/self/status"
# bcc's compiler: Debian's libLLVM-14.so.1 and libclang-cpp.so.14 (libbcc links both).
COMPILER_LIB = re.compile(r"/lib(?:LLVM|clang)[^/]*\.so[^/]*$")


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    perms: str
    path: str
    rss_kb: int
    anonymous_kb: int


def mappings(smaps_text: str) -> list[Mapping]:
    """The mappings of a ``/proc/PID/smaps`` text, with their resident and anonymous sizes."""
    out: list[Mapping] = []
    head: list[str] | None = None
    fields: dict[str, int] = {}

    def close() -> None:
        if head is not None:
            lo, hi = (int(x, 16) for x in head[0].split("-"))
            path = head[5] if len(head) > 5 else ""
            out.append(
                Mapping(lo, hi, head[1], path, fields.get("Rss", 0), fields.get("Anonymous", 0))
            )

    for line in smaps_text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0].endswith(":"):
            if len(parts) >= 2 and parts[1].isdigit():
                fields[parts[0][:-1]] = int(parts[1])
            continue
        close()
        head, fields = parts, {}
    close()
    return out


def droppable(maps: list[Mapping]) -> list[Mapping]:
    """The compiler's resident pages that can be dropped with no change in what they read:
    private, not writable, no anonymous page, file a compiler library."""
    return [
        m
        for m in maps
        if COMPILER_LIB.search(m.path)
        and m.perms[1] != "w"
        and m.perms[3] == "p"
        and m.anonymous_kb == 0
        and m.rss_kb > 0
    ]


def status_kb(field: str) -> int:
    """A memory field of this process's ``/proc/self/status`` (``VmRSS``, ``VmHWM``), KiB; 0
    where it cannot be read."""
    for line in (read_small(STATUS) or "").splitlines():
        if line.startswith(f"{field}:"):
            with contextlib.suppress(ValueError, IndexError):
                return int(line.split()[1])
    return 0


def rss_kb() -> int:
    """This process's resident set (VmRSS), KiB; 0 where it cannot be read."""
    return status_kb("VmRSS")


def release_compiler_memory() -> int:
    """Drop the BPF compiler's pages from this process and trim the heap (see the module).

    Never raises: where the libc calls or ``/proc`` are missing, less or nothing is released.

    Returns:
        KiB by which the resident set fell.
    """
    before = rss_kb()
    try:
        c = libc()
        maps = mappings(SMAPS.read_text())
    except OSError as e:
        log.debug("compiler memory: %s", e)
        return 0
    for m in droppable(maps):
        c.madvise(m.start, m.end - m.start, MADV_DONTNEED)  # a failure leaves it as it was
    if hasattr(c, "malloc_trim"):  # glibc's; not in every C library
        c.malloc_trim(0)
    fell = max(0, before - rss_kb())
    log.debug("compiler memory: resident set %d KiB smaller", fell)
    return fell
