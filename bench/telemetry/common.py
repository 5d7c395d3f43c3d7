"""What the telemetry benchmarks share: bcc's reference tools, their histograms, /proc figures."""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autotune.features.schema import hist_quantile
from autotune.telemetry.sample import N_SLOTS, Counts

TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
# A histogram row of bcc's tools: "    16 -> 31     : 531    |****  |".
_ROW = re.compile(r"^\s*(\d+)\s*->\s*(\d+)\s*:\s*(\d+)")


def parse_log2_hist(text: str) -> Counts:
    """A bcc log2 histogram (``lo -> hi : count`` rows, in µs) in our slots.

    Row ``[lo, hi]`` with ``hi = 2**(k+1) - 1`` is our slot ``k``; "0 -> 1" is slot 0. bcc's
    Python tools print no row for 0 µs (their slot 0), so their slot 0 counts 1 µs only.
    """
    out = np.zeros(N_SLOTS, np.int64)
    for line in text.splitlines():
        m = _ROW.match(line)
        if m:
            slot = min(int(m.group(2)).bit_length() - 1, N_SLOTS - 1)
            out[max(slot, 0)] += int(m.group(3))
    return out


def p50_p99_us(hist: Counts) -> tuple[float, float]:
    """p50 and p99 of a log2-µs histogram in µs (interpolated inside the slot, in log2)."""
    q = hist_quantile(hist, [0.5, 0.99])[0]
    return float(2 ** q[0]), float(2 ** q[1])


@dataclass
class RefTool:
    """One of bcc's tools, tracing until :meth:`stop` (SIGINT), which returns its output."""

    name: str
    proc: subprocess.Popen[str]
    output: str = ""

    def interrupt(self) -> None:
        """Ask it to print its histogram and exit (bcc's tools do on SIGINT)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def stop(self, interrupt: bool = True) -> str:
        """Interrupt it (once: a second SIGINT cuts bcc's Python tools off mid-print) and
        return everything it printed."""
        if interrupt:
            self.interrupt()
        out, _ = self.proc.communicate(timeout=60)
        self.output += out
        return self.output


def start_tool(name: str, argv: Sequence[str], ready_timeout: float = 60.0) -> RefTool:
    """Start ``argv`` with line-buffered output and wait for its "Tracing" line.

    Raises:
        RuntimeError: it exited or said nothing in time (its output is in the message).
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        ["stdbuf", "-oL", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    tool = RefTool(name, proc)
    assert proc.stdout is not None
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            tool.output += line
            if line.startswith("Tracing"):
                return tool
            if not line and proc.poll() is not None:
                break
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    rest, _ = proc.communicate(timeout=30)
    raise RuntimeError(f"{name} did not start: {(tool.output + rest).strip()[-300:]}")


def stop_all(running: dict[str, RefTool]) -> dict[str, str]:
    """Interrupt every tool at once (so their windows end together); name → output."""
    for t in running.values():
        t.interrupt()
    return {name: t.stop(interrupt=False) for name, t in running.items()}


@contextlib.contextmanager
def tools(specs: dict[str, Sequence[str]]) -> Iterator[tuple[dict[str, RefTool], dict[str, str]]]:
    """Start every tool that can run here, in order; yields (running, name → why it could not).

    List the slow starters first: the earlier a tool is ready, the longer it traces before the
    window the caller compares begins.
    """
    running: dict[str, RefTool] = {}
    failed: dict[str, str] = {}
    try:
        for name, argv in specs.items():
            try:
                running[name] = start_tool(name, argv)
            except RuntimeError as e:
                failed[name] = str(e).splitlines()[-1]
        yield running, failed
    finally:
        for t in running.values():
            if t.proc.poll() is None:
                t.proc.kill()
                t.proc.wait()


def proc_cpu_ns(pid: int) -> tuple[int, int]:
    """(utime + stime, cutime + cstime) of a process in ns, from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    f = text[text.rindex(")") + 2 :].split()
    return (int(f[11]) + int(f[12])) * TICK_NS, (int(f[13]) + int(f[14])) * TICK_NS


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB: resident now, and its peak."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields.get("VmRSS", 0), fields.get("VmHWM", 0)


@contextlib.contextmanager
def memory_disk(size_mib: int) -> Iterator[Path]:
    """An ext4 loop device backed by a file in /dev/shm, mounted; yields the mount point.

    Memory-backed so that fio on it measures the block layer and our tracepoints, not the other
    engineers' load on the root disk. Unmounted, detached and deleted afterwards.
    """
    work = Path(tempfile.mkdtemp(prefix="autotune-bench-shm-", dir="/dev/shm"))
    backing, mnt = work / "disk.img", work / "mnt"
    with backing.open("wb") as f:
        f.truncate(size_mib << 20)
    dev = subprocess.run(
        ["losetup", "--find", "--show", str(backing)], check=True, capture_output=True, text=True
    ).stdout.strip()
    mounted = False
    try:
        subprocess.run(["mkfs.ext4", "-q", "-F", dev], check=True, capture_output=True)
        mnt.mkdir()
        subprocess.run(["mount", "-o", "noatime", dev, str(mnt)], check=True)
        mounted = True
        yield mnt
    finally:
        if mounted:
            subprocess.run(["umount", str(mnt)], check=False)
        subprocess.run(["losetup", "-d", dev], check=False)
        shutil.rmtree(work, ignore_errors=True)


def prog_stats(fds: dict[str, int]) -> dict[str, tuple[int, int]]:
    """name → (run_time_ns, run_cnt) of our BPF programs (counted while bpf_stats is on)."""
    out = {}
    for name, fd in fds.items():
        info = dict(
            line.split(":\t", 1)
            for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines()
            if ":\t" in line
        )
        out[name] = (int(info.get("run_time_ns", 0)), int(info.get("run_cnt", 0)))
    return out


BPF_STATS = Path("/proc/sys/kernel/bpf_stats_enabled")


@contextlib.contextmanager
def bpf_stats_enabled() -> Iterator[None]:
    """Turn kernel.bpf_stats_enabled on for the block, and back to what it was."""
    before = BPF_STATS.read_text().strip()
    BPF_STATS.write_text("1\n")
    try:
        yield
    finally:
        BPF_STATS.write_text(before + "\n")


def node_prog_stats() -> dict[int, tuple[int, int]]:
    """id → (run_time_ns, run_cnt) of every BPF program loaded on the node, whoever loaded it
    (counted while bpf_stats is on): for programs of another process, such as a tuner's."""
    import ctypes

    from bcc.libbcc import lib

    out: dict[int, tuple[int, int]] = {}
    nid, start = ctypes.c_uint32(0), 0
    while lib.bpf_prog_get_next_id(start, ctypes.byref(nid)) == 0:
        start = nid.value
        fd = lib.bpf_prog_get_fd_by_id(start)
        if fd < 0:
            continue  # unloaded meanwhile
        try:
            info = dict(
                line.split(":\t", 1)
                for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines()
                if ":\t" in line
            )
            out[start] = (int(info.get("run_time_ns", 0)), int(info.get("run_cnt", 0)))
        except OSError:
            pass
        finally:
            os.close(fd)
    return out
