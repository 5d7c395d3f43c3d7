"""Block I/O per device, from ``bpf/block.bpf.c``: request latency and bytes and requests.

The kernel keeps cumulative per-CPU counters per device number; each :meth:`BlockCollector.read`
returns what changed since the previous read, for the devices that saw I/O. The program is the
process's shared one (:mod:`autotune.telemetry.programs`): the devices are the node's, the same for
every job.
"""

from __future__ import annotations

import ctypes as ct
from typing import TYPE_CHECKING

import numpy as np

from autotune.system.blockdev import disk_of_devno
from autotune.telemetry import bpfmaps
from autotune.telemetry.reading import memo
from autotune.telemetry.sample import BLOCK_COUNTERS, N_SLOTS, BlockDeviceStats, Counts

if TYPE_CHECKING:
    from autotune.telemetry.programs import Lease

_NB = len(BLOCK_COUNTERS)
_WORDS = _NB + N_SLOTS  # struct dev_stats in block.bpf.c
_MINOR_BITS = 20  # the kernel's dev_t, as tracepoints report it: major << 20 | minor


def device_name(dev: int) -> str:
    """The disk name of a kernel ``dev_t`` (``major:minor`` when it has none any more)."""
    major, minor = dev >> _MINOR_BITS, dev & ((1 << _MINOR_BITS) - 1)
    return disk_of_devno(major, minor) or f"{major}:{minor}"


class BlockCollector:
    """Per-device counters of the process's loaded block program, read per interval (each
    collector keeps its own previous reading: several jobs share the program).

    Args:
        lease: the job's hold on the programs; their block program must be loaded.
    """

    missing: frozenset[str] = frozenset()

    def __init__(self, lease: Lease) -> None:
        if lease.programs.block is None:
            raise ValueError("the block program is not loaded")
        self._devices = lease.programs.block.get_table(b"devices")
        self._key = lease.programs.roles_table  # names this load in a shared reading
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
        now = memo((self._key, "block"), self._cumulative)
        out: dict[str, BlockDeviceStats] = {}
        for dev, values in now.items():
            prev = self._prev.get(dev)
            d = values - prev if prev is not None else values
            if d.any():
                out[self._name(dev)] = BlockDeviceStats(counters=d[:_NB].copy(), lat_hist=d[_NB:])
        self._prev = now
        return out

    def close(self) -> None:
        """Nothing to do: the program goes with the last lease."""
