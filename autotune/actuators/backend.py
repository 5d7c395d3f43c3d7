"""What every backend family offers the session: set a knob, follow the job, and report."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from autotune.actuators.journal import Journal
from autotune.target import Members


class Stuck(Exception):
    """A write that could not be made or did not stick: the session disables the knob."""


def write_int(path: Path, value: int) -> bool:
    """Write an integer to a sysfs or cgroup file and read it back; False when the file is gone.

    Raises:
        Stuck: the write failed, or the file reads back another value.
    """
    try:
        path.write_text(str(value))
        got = path.read_text().strip()
    except FileNotFoundError:
        return False
    except OSError as e:
        raise Stuck(f"cannot write {path}: {e.strerror}") from e
    if got != str(value):
        raise Stuck(f"{path} reads back {got} after writing {value}")
    return True


@dataclass(frozen=True)
class Notice:
    """Something :meth:`Family.follow` found: a knob to give up.

    Attributes:
        knob: the knob.
        event: ``yield`` (changed behind our back) or ``stuck`` (can no longer be written).
        reason: one line for the decision log.
        found: the value found, on the knob's scale, when known.
    """

    knob: str
    event: str
    reason: str
    found: float | None = None


class Family(ABC):
    """The knobs of one backend family (weights, affinity, readahead, prefetch).

    A family journals an object's original value before its first write (:class:`Journal`),
    writes, reads back and raises :class:`Stuck` when the value did not stick. Restoring is not
    its job: the journal is replayed by :mod:`autotune.actuators.restore`, on a normal exit and
    after a crash alike, so both paths run the same code.
    """

    knobs: tuple[str, ...] = ()

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    @abstractmethod
    def set(self, knob: str, value: float, members: Members) -> str:
        """Write ``value`` (a ladder value) to ``knob`` for the members; return what was touched.

        Raises:
            Stuck: the write failed or did not read back.
        """

    @abstractmethod
    def follow(self, members: Members) -> list[Notice]:
        """Put new threads and processes under the settings; report knobs to give up."""
