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
from typing import Protocol

from autotune.actuators.decisions import RESTORE, Decision
from autotune.actuators.family import Family, Notice, Stuck
from autotune.actuators.journal import Journal, Session
from autotune.knobs import by_name
from autotune.roles import Role
from autotune.target import Members

KNOB = "prefetch.loader"
KIND = "prefetch"
# Follows without an acknowledgement before the knob is given up: at the default 250 ms interval
# that is 5 s, many batches for any job that trains at all.
ACK_FOLLOWS = 20


class Channel(Protocol):
    """What the actuator needs of the progress server."""

    clients: set[str]
    prefetch_ack: int | None

    def set_prefetch(self, depth: int) -> int: ...


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


class Prefetch(Family):
    """``prefetch.loader`` through the progress channel."""

    knobs = (KNOB,)

    def __init__(self, journal: Journal, channel: Channel | None) -> None:
        super().__init__(journal)
        if channel is None:
            raise Stuck("the job does not integrate (no progress channel)")
        self.channel = channel
        self.wanted: int | None = None
        self.asked: set[str] = set()
        self.waiting = 0

    def _journal(self) -> None:
        entry = self.journal.entries.get(KIND)
        if entry is None:
            ack = self.channel.prefetch_ack
            default = by_name(KNOB).default or 2.0
            entry = {"kind": KIND, "knob": KNOB, "original": ack or int(default), "clients": []}
            self.journal.put(KIND, entry)
        for addr in _clients(self.channel):
            if _hex(addr) not in entry["clients"]:
                entry["clients"].append(_hex(addr))
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


def replay(session: Session) -> list[Decision]:
    """Ask the job's processes for their original depth (sent, not verified)."""
    out: list[Decision] = []
    for e in session["entries"].values():
        if e.get("kind") != KIND or not e["clients"]:
            continue
        original = int(e["original"])
        sent = _send(e["clients"], original)
        if sent:  # none: the job is gone, and its depth with it
            out.append(
                Decision(
                    KNOB,
                    Role.LOADER,
                    None,
                    original,
                    "restore",
                    RESTORE,
                    detail=f"asked {sent} of {len(e['clients'])} job process(es); not verified",
                )
            )
    return out
