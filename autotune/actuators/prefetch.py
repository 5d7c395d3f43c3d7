"""The DataLoader's prefetch depth, for jobs that use :mod:`autotune.client`.

The depth goes to the job over the progress channel (:class:`~autotune.telemetry.progress.
ProgressServer`); the job applies it between batches and acknowledges, and the acknowledgement is
the read-back. It therefore arrives an interval or so later: :meth:`Prefetch.follow` checks it,
and a job that never acknowledges (no multi-process DataLoader) gets the knob disabled after
:data:`ACK_FOLLOWS` follows.

The journal keeps the job's client addresses (abstract Unix socket names), so restore can ask
the job for its original depth even after the tuner crashed, from any socket. The job only
hears it at its next batch and its acknowledgement goes to the (gone) tuner: such a restore is
sent, not verified. The original depth is the job's first acknowledgement when there was one,
else PyTorch's default (the client does not report the depth it started with).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from autotune.actuators.backend import Availability, Backend, Channel, Context, Notice, Stuck
from autotune.actuators.decisions import RESTORE, Decision
from autotune.actuators.journal import Journal, JournalEntry, Record
from autotune.knobs import Family, by_name
from autotune.knobs.readback import prefetch_values
from autotune.roles import Role
from autotune.system import cgroups
from autotune.target import Members

KNOB = "prefetch.loader"
# Follows without an acknowledgement before the knob is given up: at the default 250 ms interval
# that is 5 s, many batches for any job that trains at all.
ACK_FOLLOWS = 20


__all__ = ["Channel", "Prefetch", "PrefetchEntry"]


class PrefetchEntry(JournalEntry):
    """The job's original depth, and its processes' client addresses (hex) to ask on restore."""

    kind: Literal["prefetch"] = "prefetch"
    knob: str = KNOB
    original: int
    clients: list[str] = Field(default_factory=list)


def _clients(channel: Channel) -> list[str]:
    """A copy of the channel's client addresses (its receiving thread may be adding one)."""
    while True:
        try:
            return list(channel.clients)
        except RuntimeError:  # the set changed size while being copied: copy again
            continue


def _hex(addr: str | bytes) -> str:
    return (addr if isinstance(addr, bytes) else addr.encode()).hex()


def _send(addresses: list[str], depth: int) -> int:
    """Send ``S prefetch <depth>`` to each client address (hex); returns how many were sent."""
    sent = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        for addr in addresses:
            try:
                s.sendto(f"S prefetch {depth}".encode(), bytes.fromhex(addr))
                sent += 1
            except OSError:
                continue  # that process is gone
    return sent


class Prefetch(Backend):
    """``prefetch.loader`` through the progress channel (``ctx.progress``).

    Raises:
        Stuck: the job does not integrate (no channel): the knob is disabled.
    """

    name = "progress_channel"
    family = Family.PREFETCH
    entry = PrefetchEntry

    def __init__(self, journal: Journal, ctx: Context) -> None:
        super().__init__(journal, ctx)
        channel = ctx.progress
        if channel is None:
            raise Stuck("the job does not integrate (no progress channel)")
        self.channel = channel
        self.wanted: int | None = None
        self.asked: set[str] = set()
        self.waiting = 0

    @classmethod
    def available(cls, mounts: cgroups.CgroupMounts) -> Availability:
        return Availability(True, "jobs that use autotune.client (the progress channel)")

    def _journal(self) -> None:
        key = self.entry.kind_name()
        entry = self.journal.entries.get(key)
        if not isinstance(entry, PrefetchEntry):
            ack = self.channel.prefetch_ack
            default = by_name(KNOB).default or 2.0
            entry = PrefetchEntry(original=ack or int(default))
            self.journal.put(key, entry)
        for addr in _clients(self.channel):
            if _hex(addr) not in entry.clients:
                entry.clients.append(_hex(addr))
                self.journal.touch()

    def _ask(self, depth: int) -> int:
        self._journal()
        self.journal.wrote(KNOB, depth)
        self.journal.flush()
        self.asked = {_hex(a) for a in _clients(self.channel)}
        return self.channel.set_prefetch(depth)

    def set(self, knob: str, value: float, members: Members) -> str:
        self.wanted = int(value)
        self.waiting = 0
        n = self._ask(self.wanted)
        return f"asked {n} job process(es)" if n else "no job process has reported yet"

    def inert(self, knob: str, members: Members) -> str:
        return "" if _clients(self.channel) else "no job process has reported yet"

    def read(self, members: Members) -> dict[str, float]:
        return prefetch_values(self.channel)

    def follow(self, members: Members) -> list[Notice]:
        want = self.wanted
        if want is None:
            return []
        if self.channel.prefetch_ack == want:
            self.waiting = 0
            return []
        if {_hex(a) for a in _clients(self.channel)} - self.asked:
            self._ask(want)  # a job process that reported since
        if not self.channel.clients:
            return []
        self.waiting += 1
        if self.waiting <= ACK_FOLLOWS:
            return []
        self.wanted = None
        return [
            Notice(
                KNOB,
                "stuck",
                f"the job did not acknowledge depth {want} in {ACK_FOLLOWS} intervals "
                "(no multi-process DataLoader?)",
            )
        ]

    @classmethod
    def restore(cls, record: Record, entries: Sequence[JournalEntry]) -> list[Decision]:
        """Ask the job's processes for their original depth (sent, not verified)."""
        out: list[Decision] = []
        for e in entries:
            if not isinstance(e, PrefetchEntry) or not e.clients:
                continue
            sent = _send(e.clients, e.original)
            if sent:  # none: the job is gone, and its depth with it
                detail = f"asked {sent} of {len(e.clients)} job process(es); not verified"
                out.append(
                    Decision(KNOB, Role.LOADER, None, e.original, "restore", RESTORE, detail=detail)
                )
        return out
