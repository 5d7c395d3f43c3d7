"""GPU utilization and memory through NVML (nvidia-ml-py), kept open across intervals.

No driver or no GPU is a normal CPU node: :attr:`GpuCollector.present` is False and the sample
says so (``gpu_present``), never zeros posing as data. The figures are the node's: the mean
utilization of every GPU NVML sees, and their memory in use as a share of their total.
"""

from __future__ import annotations

import contextlib
from typing import Any


class GpuCollector:
    """NVML, initialised once; :meth:`read` per interval."""

    def __init__(self) -> None:
        self.present = False
        self.reason = ""
        self._nv: Any = None
        self._handles: list[Any] = []
        try:
            import pynvml  # nvidia-ml-py's module

            pynvml.nvmlInit()
        except Exception as e:  # no libnvidia-ml.so, no driver
            self.reason = f"NVML unavailable ({type(e).__name__}: {e})"
            return
        self._nv = pynvml
        try:
            self._handles = [
                pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())
            ]
        except Exception as e:
            self.reason = f"NVML query failed ({type(e).__name__}: {e})"
        self.present = bool(self._handles)
        if not self.present and not self.reason:
            self.reason = "NVML found no GPU"

    def read(self) -> tuple[bool, float, float]:
        """``(present, utilization 0..1, memory in use 0..1)``; absent → ``(False, 0, 0)``."""
        if not self.present:
            return False, 0.0, 0.0
        nv = self._nv
        try:
            util = [nv.nvmlDeviceGetUtilizationRates(h).gpu for h in self._handles]
            mems = [nv.nvmlDeviceGetMemoryInfo(h) for h in self._handles]
        except Exception as e:  # a GPU fell off the bus mid-run: say so from now on
            self.present = False
            self.reason = f"NVML query failed ({type(e).__name__}: {e})"
            return False, 0.0, 0.0
        total = sum(int(m.total) for m in mems)
        used = sum(int(m.used) for m in mems)
        return True, sum(util) / (100.0 * len(util)), used / total if total else 0.0

    def close(self) -> None:
        """Shut NVML down (idempotent)."""
        if self._nv is not None:
            with contextlib.suppress(Exception):
                self._nv.nvmlShutdown()
            self._nv = None
            self.present = False
