"""NVIDIA GPUs through NVML (nvidia-ml-py). No GPU is a fact to report, not an error."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Gpu:
    """One GPU's identity and current load."""

    index: int
    name: str
    util_percent: float
    mem_used_bytes: int
    mem_total_bytes: int


@dataclass(frozen=True)
class GpuReport:
    """What NVML says: ``available`` False with a reason when there is no driver or no GPU."""

    available: bool
    reason: str
    gpus: tuple[Gpu, ...] = ()


def _nvml() -> Any:
    import pynvml  # nvidia-ml-py's module

    return pynvml


def probe() -> GpuReport:
    """List the GPUs with their utilization and memory; never raises."""
    try:
        nv = _nvml()
        nv.nvmlInit()
    except Exception as e:  # no libnvidia-ml.so, no driver: a normal CPU node
        return GpuReport(False, f"NVML unavailable ({type(e).__name__}: {e})".strip())
    try:
        gpus = []
        for i in range(nv.nvmlDeviceGetCount()):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            name = nv.nvmlDeviceGetName(h)
            util = nv.nvmlDeviceGetUtilizationRates(h)
            mem = nv.nvmlDeviceGetMemoryInfo(h)
            gpus.append(
                Gpu(
                    index=i,
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    util_percent=float(util.gpu),
                    mem_used_bytes=int(mem.used),
                    mem_total_bytes=int(mem.total),
                )
            )
        if not gpus:
            return GpuReport(False, "NVML found no GPU")
        return GpuReport(True, "", tuple(gpus))
    except Exception as e:
        return GpuReport(False, f"NVML query failed ({type(e).__name__}: {e})")
    finally:
        with contextlib.suppress(Exception):
            nv.nvmlShutdown()
