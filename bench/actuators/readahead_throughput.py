"""Effect of the read-ahead knob: cold-cache sequential reads with 4 KiB reads.

    python -m bench.actuators.readahead_throughput [--repeat 5] [--mib 256]

A file on a loop device of our own (ext4, attached with direct I/O so that the root disk's page
cache and read-ahead stay out of it) is read start to end in 4 KiB reads by a reader process.
The actuators find the device from the reader's open file and set ``readahead`` to 16 KiB,
128 KiB (the kernel's usual default, the baseline; a direct-I/O loop device starts at 2560 KiB
here), 1 MiB and 16 MiB in turn, the order rotating every repeat. Before each read the file's
page cache is evicted (posix_fadvise DONTNEED on the file and the device, not a global
drop_caches, which would empty everyone's caches on this shared VM) and checked empty (fincore).
Reported: MB/s per setting, median [range], the ratio of medians to the 128 KiB baseline, and
the mean request size the device saw. Needs root.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import textwrap

from autotune.actuators import Actuators, DecisionLog
from autotune.knobs import READAHEAD_DEFAULT_KB
from autotune.system.blockdev import SYS_BLOCK
from autotune.target import Target
from bench.actuators.common import bench_settings, load, spread
from workloads.disk import DataDisk, cached_pages, drop_cache

BASELINE_KB = int(READAHEAD_DEFAULT_KB)
SETTINGS_KB = (16, BASELINE_KB, 1024, 16384)
# The reader holds the file open between runs (so the actuators find the device from its open
# files) but reads through a fresh open each run: Linux copies the device's read-ahead into each
# open file at open(), so a file opened before a change keeps the old read-ahead.
READER = textwrap.dedent(
    """
    import os, sys, time
    held = os.open(sys.argv[1], os.O_RDONLY)
    print("ready", flush=True)
    for line in sys.stdin:
        fresh = line.strip() == "fresh"
        fd = os.open(sys.argv[1], os.O_RDONLY) if fresh else held
        os.lseek(fd, 0, os.SEEK_SET)
        n, t0 = 0, time.perf_counter()
        while chunk := os.read(fd, 4096):
            n += len(chunk)
        print(n, time.perf_counter() - t0, flush=True)
        if fresh:
            os.close(fd)
    """
)


def _io(device: str) -> tuple[int, int]:
    """Reads completed and sectors read by a block device since boot."""
    fields = (SYS_BLOCK / device / "stat").read_text().split()
    return int(fields[0]), int(fields[2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--mib", type=int, default=256, help="size of the file read")
    ap.add_argument(
        "--held", action="store_true", help="read through the fd opened at the start instead"
    )
    args = ap.parse_args()
    print(f"before: {load()}")
    mbps: dict[int, list[float]] = {kb: [] for kb in SETTINGS_KB}
    req_kib: dict[int, list[float]] = {kb: [] for kb in SETTINGS_KB}
    dev_share: dict[int, list[float]] = {kb: [] for kb in SETTINGS_KB}
    with DataDisk(args.mib + 64) as disk, bench_settings() as settings:
        data = disk.mnt / "seq.bin"
        block = os.urandom(1 << 20)
        with data.open("wb") as f:
            for _ in range(args.mib):
                f.write(block)
            f.flush()
            os.fsync(f.fileno())
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, str(data)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/",
        )  # fmt: skip
        try:
            assert reader.stdin is not None and reader.stdout is not None
            if reader.stdout.readline().strip() != "ready":
                raise SystemExit("the reader did not start")
            target = Target.from_pid(reader.pid)
            with Actuators(target, settings, log=DecisionLog(console=False)) as act:
                for r in range(args.repeat):
                    k = r % len(SETTINGS_KB)
                    for kb in SETTINGS_KB[k:] + SETTINGS_KB[:k]:
                        act.apply({"readahead": float(kb)}, reason="bench")
                        if act.current().get("readahead") != kb or act.disabled.get("readahead"):
                            raise SystemExit(f"readahead {kb} did not take: {act.disabled}")
                        drop_cache(disk.mnt, disk.dev)
                        if cached_pages(data):
                            raise SystemExit("the file is still in the page cache")
                        before = _io(disk.dev)
                        reader.stdin.write("held\n" if args.held else "fresh\n")
                        reader.stdin.flush()
                        n, seconds = reader.stdout.readline().split()
                        reqs, sectors = (b - a for a, b in zip(before, _io(disk.dev), strict=True))
                        mbps[kb].append(int(n) / float(seconds) / 1e6)
                        req_kib[kb].append(sectors * 512 / max(1, reqs) / 1024)
                        dev_share[kb].append(sectors * 512 / int(n))
        finally:
            reader.kill()
            reader.wait()
    base = statistics.median(mbps[BASELINE_KB])
    print(f"loop device with direct I/O, {args.mib} MiB read in 4 KiB reads, cold cache each run")
    for kb in SETTINGS_KB:
        ratio = statistics.median(mbps[kb]) / base
        print(
            f"readahead {kb:>5} KiB: {spread(mbps[kb])} MB/s (median [range], {args.repeat} runs);"
            f" {ratio:.2f}× the {BASELINE_KB} KiB baseline; mean request "
            f"{statistics.median(req_kib[kb]):.0f} KiB; read from the device: "
            f"{min(dev_share[kb]):.0%}–{max(dev_share[kb]):.0%} of the file"
        )
    print(f"after: {load()}")


if __name__ == "__main__":
    main()
