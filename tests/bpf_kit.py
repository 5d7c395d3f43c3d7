"""What BPF a test's own process holds, read from /proc/self/fd (shared by the job session and
telemetry tests, which check that what was opened is closed)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PROGRAM = "anon_inode:bpf-prog"
PERF_EVENT = "anon_inode:[perf_event]"  # one per attached tracepoint


def bpf_handles() -> dict[str, int]:
    """How many BPF programs and perf events (attached tracepoints) this process holds."""
    out = {PROGRAM: 0, PERF_EVENT: 0}
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link in out:
                out[link] += 1
    return out


def program_ids() -> set[int]:
    """The kernel's ids of the BPF programs this process holds (``prog_id`` in fdinfo)."""
    ids = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}") != PROGRAM:
                continue
            for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines():
                if line.startswith("prog_id:"):
                    ids.add(int(line.split()[1]))
    return ids


def programs_alive(ids: set[int]) -> set[int]:
    """Those of ``ids`` the kernel still has loaded (anywhere, not only in this process)."""
    from bcc.libbcc import lib

    alive = set()
    for prog_id in ids:
        fd = lib.bpf_prog_get_fd_by_id(prog_id)
        if fd >= 0:
            os.close(fd)
            alive.add(prog_id)
    return alive
