"""The knob values in effect, read for every row of a recording without exploring.

:func:`autotune.knobs.readback.read_knobs` walks the job's process tree and rescans every open
file of the job to find its block devices; a recording reads the knobs four times a second, so
the process tree is walked again only every :data:`MEMBERS_REFRESH_S` (beside hackbench's 160
processes the walk cost 3.5 ms of CPU, most of the recorder's own), the devices are found again
only every few seconds and the cgroup mounts once. The values themselves are read every row.
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
from autotune.target import Members, Target

# A job that starts reading from another device shows its read-ahead within this delay, or
# later where one search costs more than DEVICE_SEARCH_SHARE of a core at that pace (one stat per
# open file: hackbench's 160 processes hold 3,500 sockets, a 20 ms search).
DEVICE_REFRESH_S = 5.0
DEVICE_SEARCH_SHARE = 0.002
# A process the job starts is read (its cgroup, its threads' affinity) within this delay: the
# collector's /proc backstop runs as often (autotune.telemetry.sched.RECONCILE_S).
MEMBERS_REFRESH_S = 2.0


class KnobReader:
    """Call it to get knob name → value in effect for ``target`` now; writes nothing.

    Args:
        target: the job.
        prefetch: the progress channel, for the DataLoader prefetch depth the job acknowledged.
        cgroup_parent: ``Settings.cgroup_parent``.
        refresh_s: the fewest seconds between two searches for the job's block devices.
        members_refresh_s: seconds between two walks of the job's process tree.
    """

    def __init__(
        self,
        target: Target,
        prefetch: PrefetchAck | None = None,
        cgroup_parent: str = DEFAULT_CGROUP_PARENT,
        refresh_s: float = DEVICE_REFRESH_S,
        members_refresh_s: float = MEMBERS_REFRESH_S,
    ) -> None:
        self.target = target
        self.prefetch = prefetch
        self.cgroup_parent = cgroup_parent
        self.refresh_s = refresh_s
        self.members_refresh_s = members_refresh_s
        self._mounts = cgroups.mounts()
        self._devices: list[str] = []
        self._next = 0.0
        self._members: Members | None = None
        self._members_next = 0.0

    def __call__(self) -> dict[str, float]:
        now = time.monotonic()
        if self._members is None or now >= self._members_next:
            self._members = self.target.members()
            self._members_next = now + self.members_refresh_s
        m = self._members  # a process gone since reads as absent, and is skipped
        if now >= self._next:
            cpu = time.thread_time()
            # As read_knobs: the devices of its open files, else of its working directory.
            devices = open_devices(m.all_pids)
            if not devices and m.trainer_pids:
                cwd = cwd_device(m.trainer_pids[0])
                devices = [cwd] if cwd else []
            cost = time.thread_time() - cpu
            self._devices = devices
            self._next = now + max(self.refresh_s, cost / DEVICE_SEARCH_SHARE)
        return read_members(
            m,
            mounts=self._mounts,
            devices=self._devices,
            prefetch=self.prefetch,
            cgroup_parent=self.cgroup_parent,
        )
