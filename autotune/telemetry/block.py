"""Block I/O per device, from ``bpf/block.bpf.c``: request latency and bytes and requests.

The kernel keeps cumulative per-CPU counters per device number; each :meth:`BlockCollector.read`
returns what changed since the previous read, for the devices that saw I/O.
"""

from __future__ import annotations

import ctypes as ct

import numpy as np

from autotune.system.blockdev import disk_of_devno
from autotune.telemetry import bpfmaps
from autotune.telemetry.loader import load
from autotune.telemetry.sample import BLOCK_COUNTERS, N_SLOTS, BlockDeviceStats, Counts

_NB = len(BLOCK_COUNTERS)
_WORDS = _NB + N_SLOTS  # struct dev_stats in block.bpf.c
_MINOR_BITS = 20  # the kernel's dev_t, as tracepoints report it: major << 20 | minor


def device_name(dev: int) -> str:
    """The disk name of a kernel ``dev_t`` (``major:minor`` when it has none any more)."""
    major, minor = dev >> _MINOR_BITS, dev & ((1 << _MINOR_BITS) - 1)
    return disk_of_devno(major, minor) or f"{major}:{minor}"


class BlockCollector:
    """Loads ``block.bpf.c`` and reads its per-device counters per interval.

    Raises:
        BpfUnavailable: the program failed to load.
    """

    missing: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.bpf = load("block", bpfmaps.cflags())
        self._closed = False
        self._devices = self.bpf.get_table(b"devices")
        self._names: dict[int, str] = {}
        self._prev = self._cumulative()

    def _cumulative(self) -> dict[int, Counts]:
        items = bpfmaps.percpu_hash_items(self._devices, ct.c_uint32, _WORDS)
        return {dev: v.view(np.int64).sum(axis=0) for dev, v in items}

    def _name(self, dev: int) -> str:
        name = self._names.get(dev)
        if name is None:
            name = self._names[dev] = device_name(dev)
        return name

    def read(self) -> dict[str, BlockDeviceStats]:
        """Per-device I/O since the previous read, by disk name; idle devices left out."""
        now = self._cumulative()
        out: dict[str, BlockDeviceStats] = {}
        for dev, values in now.items():
            prev = self._prev.get(dev)
            d = values - prev if prev is not None else values
            if d.any():
                out[self._name(dev)] = BlockDeviceStats(counters=d[:_NB].copy(), lat_hist=d[_NB:])
        self._prev = now
        return out

    def close(self) -> None:
        """Detach the program (idempotent)."""
        if not self._closed:
            self._closed = True
            self.bpf.cleanup()
