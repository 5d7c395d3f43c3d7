"""The knob values in effect, read for every row of a recording without exploring.

:func:`autotune.knobs.readback.read_knobs` rescans every open file of the job to find its block
devices, half of its cost (≈0.3 ms of CPU a call on this VM); a recording reads the knobs four
times a second, so the devices are found again only every few seconds and the cgroup mounts once.
"""

from __future__ import annotations

import time

from autotune.knobs.readback import (
    DEFAULT_CGROUP_PARENT,
    PrefetchAck,
    cwd_device,
    open_devices,
    read_members,
)
from autotune.system import cgroups
from autotune.target import Target

# A job that starts reading from another device shows its read-ahead within this delay.
DEVICE_REFRESH_S = 5.0


class KnobReader:
    """Call it to get knob name → value in effect for ``target`` now; writes nothing.

    Args:
        target: the job.
        prefetch: the progress channel, for the DataLoader prefetch depth the job acknowledged.
        cgroup_parent: ``Settings.cgroup_parent``.
        refresh_s: seconds between two searches for the job's block devices.
    """

    def __init__(
        self,
        target: Target,
        prefetch: PrefetchAck | None = None,
        cgroup_parent: str = DEFAULT_CGROUP_PARENT,
        refresh_s: float = DEVICE_REFRESH_S,
    ) -> None:
        self.target = target
        self.prefetch = prefetch
        self.cgroup_parent = cgroup_parent
        self.refresh_s = refresh_s
        self._mounts = cgroups.mounts()
        self._devices: list[str] = []
        self._next = 0.0

    def __call__(self) -> dict[str, float]:
        m = self.target.members()
        now = time.monotonic()
        if now >= self._next:
            # As read_knobs: the devices of its open files, else of its working directory.
            devices = open_devices(m.all_pids)
            if not devices and m.trainer_pids:
                cwd = cwd_device(m.trainer_pids[0])
                devices = [cwd] if cwd else []
            self._devices, self._next = devices, now + self.refresh_s
        return read_members(
            m,
            mounts=self._mounts,
            devices=self._devices,
            prefetch=self.prefetch,
            cgroup_parent=self.cgroup_parent,
        )
