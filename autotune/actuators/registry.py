"""The backends, as one table: it chooses a backend per family, builds it, and restores entries.

Like bpftune's tuner table and TuneD's plugins: a backend is a class listed once in
:data:`BACKENDS`, in order of preference within its family. :func:`choose` takes the first one
this node has (``autotune doctor`` prints its choice and the reason), :func:`build` makes it for
a session, and :func:`parse_record` turns a journal record back into typed entries, each routed
to the backend whose entry type it is, so ``autotune restore`` needs no list of its own. A new
backend is a class with an entry type, and one line here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from autotune.actuators.affinity import Affinity
from autotune.actuators.backend import Backend, Context
from autotune.actuators.journal import Journal, Record, Session
from autotune.actuators.prefetch import Prefetch
from autotune.actuators.readahead import Readahead
from autotune.actuators.weights_cgroup import CgroupV1Weights, CgroupV2Weights
from autotune.actuators.weights_nice import NiceWeights
from autotune.actuators.weights_scx import ScxWeights
from autotune.errors import UserError
from autotune.knobs import Family
from autotune.system import cgroups

# Preference within a family, best first; families in the order a session builds them. Restore
# goes the other way (prefetch first, the sched_ext map last).
BACKENDS: tuple[type[Backend], ...] = (
    ScxWeights,
    CgroupV2Weights,
    CgroupV1Weights,
    NiceWeights,
    Affinity,
    Readahead,
    Prefetch,
)

# Journal entry kind → the backend that restores it (cgroup v1 and v2 share "cgroups").
RESTORERS: dict[str, type[Backend]] = {b.entry.kind_name(): b for b in BACKENDS}


@dataclass(frozen=True)
class Choice:
    """A backend chosen for a knob family, and why."""

    family: Family
    backend: str
    reason: str


def of(family: Family) -> tuple[type[Backend], ...]:
    """The family's backends, best first."""
    return tuple(b for b in BACKENDS if b.family is family)


def by_name(family: Family, name: str) -> type[Backend]:
    """A backend of ``family`` by name.

    Raises:
        UserError: no such backend.
    """
    for b in of(family):
        if b.name == name:
            return b
    names = ", ".join(b.name for b in of(family))
    raise UserError(f"unknown {family} backend {name!r}; one of {names}")


def choose(
    family: Family,
    mounts: cgroups.CgroupMounts | None = None,
    prefer: str | None = None,
    exclude: Sequence[str] = (),
) -> tuple[type[Backend], Choice]:
    """Pick the family's backend on this node: ``prefer`` if given, else the best available.

    The reason names what the backend is and, when a better one was passed over, why.

    Raises:
        UserError: ``prefer`` names an unknown backend or one this node cannot use.
    """
    m = mounts or cgroups.mounts()
    if prefer is not None:
        cls = by_name(family, prefer)
        avail = cls.available(m)
        if not avail.ok:
            raise UserError(f"{family} backend {prefer!r} is not available on this node")
        return cls, Choice(family, cls.name, f"asked for: {avail.reason}")
    passed: list[str] = []
    for cls in of(family):
        if cls.name in exclude:
            continue
        avail = cls.available(m)
        if avail.ok:
            why = f"{avail.reason} ({passed[0]})" if passed else avail.reason
            return cls, Choice(family, cls.name, why)
        passed.append(avail.reason)
    raise UserError(f"no {family} backend is available on this node: {'; '.join(passed)}")


def choices(mounts: cgroups.CgroupMounts | None = None) -> list[Choice]:
    """The backend each family uses on this node, and why (``autotune doctor``)."""
    m = mounts or cgroups.mounts()
    return [choose(f, m)[1] for f in Family]


def build(
    family: Family,
    journal: Journal,
    ctx: Context,
    prefer: str | None = None,
    exclude: Sequence[str] = (),
) -> tuple[Backend, Choice]:
    """Make the family's chosen backend for a session.

    Raises:
        Stuck: the backend cannot start (the session disables the family's knobs).
        UserError: ``prefer`` is unknown or unavailable, or a person's input is wrong.
    """
    cls, choice = choose(family, ctx.mounts, prefer, exclude)
    if cls is ScxWeights:
        # If the scheduler stops mid-session the weights carry on through the next backend.
        def fallback() -> Backend:
            return build(family, journal, ctx, exclude=(*exclude, cls.name))[0]

        return ScxWeights(journal, ctx, fallback=fallback), choice
    return cls(journal, ctx), choice


@dataclass
class Parsed:
    """A journal record read back: typed, and the entries that could not be (kind → why)."""

    record: Record
    unreadable: dict[str, str] = field(default_factory=dict)


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "record"
    return f"{where}: {err['msg']}"


def parse_record(raw: Session) -> Parsed:
    """Type a record read from the journal file, entry by entry.

    Raises:
        UserError: the record itself (not one entry) is malformed.
    """
    try:
        record = Record.model_validate({**raw, "entries": {}})
    except ValidationError as e:
        raise UserError(f"journal record {raw.get('id')!r} is malformed ({_first_error(e)})") from e
    parsed = Parsed(record)
    entries: dict[str, Any] = raw.get("entries") or {}
    for key, item in entries.items():
        kind = str(item.get("kind")) if isinstance(item, dict) else "?"
        cls = RESTORERS.get(kind)
        if cls is None:
            parsed.unreadable.setdefault(kind, f"no restorer for entries of kind {kind!r}")
            continue
        try:
            entry = cls.entry.model_validate(item)
        except ValidationError as e:
            parsed.unreadable.setdefault(kind, f"entry {key!r} is malformed ({_first_error(e)})")
            continue
        record.entries[key] = entry
    return parsed
