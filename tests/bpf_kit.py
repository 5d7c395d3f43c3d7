"""What BPF a test's own process holds, read from /proc/self/fd (shared by the job session and
telemetry tests, which check that what was opened is closed)."""

from __future__ import annotations

import contextlib
import os

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
