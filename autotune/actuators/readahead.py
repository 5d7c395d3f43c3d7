"""Read-ahead: ``read_ahead_kb`` of the block devices the job reads from.

The devices are found from the job's open files (``/proc/<pid>/fd``, loop devices included), or
given explicitly (from block telemetry, say). Following the job, the open files are scanned again
when a process joins or leaves it, and otherwise every ``RESCAN_S`` seconds (a scan of the cnn
job stats ~130 descriptors; once per interval it was most of the tuner's CPU). The disk holding
``/`` is left out of discovery: it serves the whole node (logs, packages, every daemon), so the
tuner changes it only when it is named explicitly.

The kernel copies a device's read-ahead into each open file when it is opened, so a value
written to the device reaches files the job opens afterwards (a DataLoader opening a file per
sample or per shard), not a file it holds open from before (measured:
bench/actuators/readahead_throughput.py --held reads with the same request size at every
setting). So each change also goes to the files the job holds open on the device
(``readahead_open_files``, on: :func:`autotune.system.openfiles.refresh_readahead`), and a
rollback undoes a value for the files opened under it; the session's restore gives the job's
open files the disk's own value back too (:meth:`Actuators.close`). ``autotune restore`` after
a crash has no job to look at: files opened under a tuned value keep it until closed, as any
opened before a person's ``blockdev --setra``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from autotune.actuators.backend import Availability, Backend, Context, Notice, Stuck, write_int
from autotune.actuators.decisions import FAILED, LEFT, RESTORE, Decision
from autotune.actuators.journal import Journal, JournalEntry, Record
from autotune.errors import UserError
from autotune.knobs import Family
from autotune.knobs.readback import open_devices, readahead_kb, readahead_values
from autotune.roles import Role
from autotune.system import blockdev, cgroups
from autotune.system.openfiles import refresh_readahead
from autotune.target import Members

KNOB = "readahead"
RESCAN_S = 2.0  # how often a job whose processes stay the same is scanned for new devices


def root_disk() -> str | None:
    """The disk holding ``/``."""
    try:
        return blockdev.disk_of_path("/")
    except OSError:
        return None


class ReadaheadEntry(JournalEntry):
    """A device's original ``read_ahead_kb``; ``yielded`` once someone else changed it."""

    kind: Literal["readahead"] = "readahead"
    knob: str = KNOB
    device: str
    path: str
    original: int
    yielded: bool = False


class Readahead(Backend):
    """``readahead`` on every device the job reads from.

    Args:
        journal: the session's journal.
        ctx: ``devices`` is used: the devices to act on; None to find them from the job's open
            files.

    Raises:
        UserError: a device named in ``ctx.devices`` does not exist (a person's mistake).
    """

    name = "read_ahead_kb"
    family = Family.READAHEAD
    entry = ReadaheadEntry

    def __init__(self, journal: Journal, ctx: Context) -> None:
        super().__init__(journal, ctx)
        devices = ctx.devices
        self.explicit = list(devices) if devices is not None else None
        for dev in self.explicit or []:
            if blockdev.device(dev) is None:
                raise UserError(f"no block device {dev!r} (see /sys/block)")
        self.root = root_disk()
        self.devices: list[str] = list(self.explicit or [])
        self.reach_open = ctx.readahead_open_files
        self.wanted: int | None = None
        self.last: dict[str, int] = {}
        self.yielded = False
        self._scanned: tuple[tuple[int, ...], float] = ((), -RESCAN_S)

    @classmethod
    def available(cls, mounts: cgroups.CgroupMounts) -> Availability:
        if not blockdev.SYS_BLOCK.is_dir():
            return Availability(False, f"no {blockdev.SYS_BLOCK}")
        return Availability(True, "the block devices the target reads from")

    def discover(self, members: Members) -> list[str]:
        """The devices to act on now."""
        if self.explicit is not None:
            return self.explicit
        found = [d for d in open_devices(members.all_pids) if d != self.root]
        return sorted(set(self.devices) | set(found))

    def _write(self, devices: list[str], value: int) -> None:
        for dev in devices:
            key = f"{self.entry.kind_name()}:{dev}"
            if key not in self.journal.entries:
                original = readahead_kb(dev)
                if original is None:
                    continue
                path = blockdev.SYS_BLOCK / dev / "queue" / "read_ahead_kb"
                entry = ReadaheadEntry(device=dev, path=str(path), original=original)
                self.journal.put(key, entry)
        self.journal.wrote(KNOB, value)
        self.journal.flush()
        for dev in devices:
            # A device that went away (a loop device detached) is simply no longer tuned.
            if write_int(blockdev.SYS_BLOCK / dev / "queue" / "read_ahead_kb", value):
                self.last[dev] = value

    def set(self, knob: str, value: float, members: Members) -> str:
        if not self.devices:  # known ones are kept; follow() finds devices opened later
            self.devices = self.discover(members)
        self.wanted = int(value)
        if not self.devices:
            return "no block device found yet: applied when the job opens a file on one"
        self._write(self.devices, self.wanted)
        return ", ".join(self.devices) + self._reach(members, self.devices)

    def _reach(self, members: Members, devices: list[str]) -> str:
        """The new value for the files the job holds open on ``devices`` too (see the
        module); what to add to the decision's detail."""
        if not self.reach_open:
            return ""
        n = refresh_readahead(members.all_pids, devices)
        return f" and {n} file{'s' if n != 1 else ''} the job holds open" if n else ""

    def follow(self, members: Members) -> list[Notice]:
        if self.wanted is None or self.yielded:
            return []
        for dev, value in self.last.items():
            got = readahead_kb(dev)
            if got is not None and got != value:
                self.yielded = True
                entry = self.journal.entries[f"{self.entry.kind_name()}:{dev}"]
                if isinstance(entry, ReadaheadEntry):
                    entry.yielded = True
                self.journal.touch()
                self.journal.flush()
                return [
                    Notice(
                        KNOB,
                        "yield",
                        f"read_ahead_kb of {dev} was set to {got} behind our back",
                        got,
                    )
                ]
        if not self._due(members):
            return []
        new = [d for d in self.discover(members) if d not in self.last]
        if new:
            self.devices = sorted(set(self.devices) | set(new))
            try:
                self._write(new, self.wanted)
            except Stuck as e:
                return [Notice(KNOB, "stuck", str(e))]
            self._reach(members, new)
        return []

    def read(self, members: Members) -> dict[str, float]:
        return readahead_values(self.devices or self.discover(members))

    def inert(self, knob: str, members: Members) -> str:
        # Until a value is asked for, the job's open files are looked at again when its
        # processes change or every RESCAN_S (after that, follow() finds the devices it opens).
        if not self.devices and self.wanted is None and self._due(members):
            self.devices = self.discover(members)
        return "" if self.devices else "no block device found yet"

    def _due(self, members: Members) -> bool:
        """Whether to scan the job's open files again (its processes changed, or it is time)."""
        pids, now = members.all_pids, time.monotonic()
        last_pids, last_t = self._scanned
        if pids == last_pids and now - last_t < RESCAN_S:
            return False
        self._scanned = (pids, now)
        return True

    @classmethod
    def restore(cls, record: Record, entries: Sequence[JournalEntry]) -> list[Decision]:
        """Put back each device's read-ahead, unless someone else changed it after us."""
        out: list[Decision] = []
        ours = record.written.get(KNOB, [])
        for e in entries:
            if isinstance(e, ReadaheadEntry):
                out.extend(_restore_device(e, ours))
        return out


def _restore_device(e: ReadaheadEntry, ours: list[object]) -> list[Decision]:
    path, original = Path(e.path), e.original
    now = readahead_kb(e.device)
    if now is None or now == original:
        return []
    if e.yielded or now not in ours:
        why = "changed by someone else: left as is"
        return [Decision(KNOB, Role.TRAINER, now, now, why, LEFT, detail=str(path))]
    try:
        path.write_text(str(original))
    except OSError as err:
        why = f"could not restore: {err.strerror}"
        return [Decision(KNOB, Role.TRAINER, now, original, why, FAILED, detail=str(path))]
    event = RESTORE if readahead_kb(e.device) == original else FAILED
    return [Decision(KNOB, Role.TRAINER, now, original, "restore", event, detail=str(path))]
