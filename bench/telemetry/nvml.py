"""The NVML telemetry path on a real GPU: what `autotune doctor` and the collector's GPU fields
read, idle and under a load that the script puts on the GPU itself.

    python3 -m bench.telemetry.nvml --json bench/results/nvml.json

Needs a GPU, NVML (nvidia-ml-py) and PyTorch with CUDA; nothing else of autotune's dependencies
(no bcc, no root), so it runs on a GPU machine without the project's environment. In order:
``autotune.system.gpu.probe()`` (the GPUs `autotune doctor` lists), then
``autotune.telemetry.gpu.GpuCollector`` read every ``--interval`` ms from a thread of its own
for ``--idle`` seconds idle, ``--busy`` seconds while the main thread holds ``--gib`` GiB on
GPU 0 and multiplies 8192x8192 bf16 matrices, and ``--idle`` seconds after the memory is
freed; each reading also goes through the observation (``featurize``: ``gpu_present``,
``gpu_util``, ``gpu_mem``) of a synthetic sample. Printed: the three phases' median
utilization and memory share, and whether each moved the way the load did (utilization above
0.5 under load and below 0.2 idle; memory up by at least ``--gib`` over the idle reading).
Exit status 1 when a check fails, 2 when there is no GPU to read.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from typing import Any

from autotune.features import FEATURE_NAMES, featurize
from autotune.system.gpu import probe
from autotune.telemetry.gpu import GpuCollector
from autotune.trace.synthetic import samples
from bench.results import write_result

GPU_FIELDS = ("gpu_present", "gpu_util", "gpu_mem")


def sample_while(
    col: GpuCollector, interval_s: float, phase: list[str], stop: threading.Event
) -> list[dict[str, Any]]:
    """Read the collector every ``interval_s`` until ``stop``; each reading tagged with the phase
    it was taken in and the observation's GPU fields."""
    out: list[dict[str, Any]] = []
    template = next(iter(samples(1)))
    index = [FEATURE_NAMES.index(f) for f in GPU_FIELDS]
    t0 = time.monotonic()
    while not stop.wait(interval_s):
        present, util, mem = col.read()
        template.gpu_present, template.gpu_util, template.gpu_mem = present, util, mem
        obs = featurize(template)
        out.append(
            {
                "t": round(time.monotonic() - t0, 3),
                "phase": phase[0],
                "present": present,
                "util": util,
                "mem": mem,
                "observation": {f: float(obs[i]) for f, i in zip(GPU_FIELDS, index, strict=True)},
            }
        )
    return out


def load(seconds: float, gib: float) -> float:
    """Hold ``gib`` GiB on GPU 0 and multiply bf16 matrices for ``seconds``; TFLOP/s done."""
    import torch

    dev = torch.device("cuda:0")
    hold = torch.empty(int(gib * (1 << 30)), dtype=torch.uint8, device=dev)
    a = torch.randn(8192, 8192, dtype=torch.bfloat16, device=dev)
    b = torch.randn(8192, 8192, dtype=torch.bfloat16, device=dev)
    n, end = 0, time.monotonic() + seconds
    start = time.monotonic()
    while time.monotonic() < end:
        for _ in range(10):
            a @ b
        torch.cuda.synchronize()
        n += 10
    elapsed = time.monotonic() - start
    del hold, a, b
    torch.cuda.empty_cache()
    return 2 * 8192**3 * n / elapsed / 1e12


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interval", type=int, default=250, help="ms between readings")
    ap.add_argument("--idle", type=float, default=3.0, help="seconds idle before and after")
    ap.add_argument("--busy", type=float, default=6.0, help="seconds under load")
    ap.add_argument("--gib", type=float, default=16.0, help="GiB held on the GPU under load")
    ap.add_argument("--json", help="write the readings here")
    ap.add_argument("--note", help="what the machine is, for the result file")
    args = ap.parse_args()
    report = probe()
    if not report.available:
        print(f"nvml: no GPU to read: {report.reason}", file=sys.stderr)
        sys.exit(2)
    for g in report.gpus:
        print(f"GPU {g.index}: {g.name}, {g.mem_total_bytes / (1 << 30):.0f} GiB")
    col = GpuCollector()
    phase, stop = ["idle_before"], threading.Event()
    readings: list[dict[str, Any]] = []
    sampler = threading.Thread(
        target=lambda: readings.extend(sample_while(col, args.interval / 1000, phase, stop))
    )
    sampler.start()
    try:
        time.sleep(args.idle)
        phase[0] = "busy"
        tflops = load(args.busy, args.gib)
        phase[0] = "idle_after"
        time.sleep(args.idle)
    finally:
        stop.set()
        sampler.join()
        col.close()
    med: dict[str, dict[str, float]] = {}
    for p in ("idle_before", "busy", "idle_after"):
        rows = [r for r in readings if r["phase"] == p]
        med[p] = {
            "util": statistics.median(r["util"] for r in rows),
            "mem": statistics.median(r["mem"] for r in rows),
            "readings": len(rows),
        }
        print(f"{p}: util {med[p]['util']:.2f}, memory {med[p]['mem']:.3f} ({len(rows)} readings)")
    total_gib = report.gpus[0].mem_total_bytes / (1 << 30)
    checks = {
        "present_in_every_reading": all(r["present"] for r in readings),
        "observation_matches_collector": all(
            abs(r["observation"]["gpu_util"] - r["util"]) < 1e-6 for r in readings
        ),
        "util_busy_above_0.5": med["busy"]["util"] > 0.5,
        "util_idle_below_0.2": max(med["idle_before"]["util"], med["idle_after"]["util"]) < 0.2,
        "mem_rose_by_the_load": (med["busy"]["mem"] - med["idle_before"]["mem"]) * total_gib
        >= args.gib * 0.95,
    }
    print(f"matrix products under load: {tflops:.0f} TFLOP/s (bf16)")
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    if args.json:
        write_result(
            args.json,
            __file__,
            args.note,
            gpus=[g.__dict__ for g in report.gpus],
            tflops_under_load=tflops,
            medians=med,
            checks=checks,
            readings=readings,
        )
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()
