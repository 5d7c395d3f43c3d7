"""Spells: a seeded schedule of alternating phases, and the line a job announces each one with.

Two bundled workloads change what is best while they run: ``neighbour_onoff`` (a CPU-bound
neighbour comes and goes, in seconds of wall time) and ``mixed_io`` (the job alternates
sequential and random reads, in samples). Both draw their spells from :func:`schedule`, so the
same seed gives the same schedule in every run, and an oracle that knows it can switch knobs at
its boundaries. A job announces each spell on stdout with :func:`announce` (one line, flushed);
:func:`parse` reads such a line back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from autotune.errors import UserError

SPELL_PREFIX = "SPELL "


@dataclass(frozen=True)
class Spell:
    """One spell: its place in the schedule, its kind, and how long it lasts.

    Attributes:
        index: 0 for the first spell.
        kind: one of the schedule's kinds (``on``/``off``, ``seq``/``random``).
        length: seconds or samples, in the schedule's unit.
    """

    index: int
    kind: str
    length: float


def schedule(seed: int, kinds: Sequence[str], low: float, high: float) -> Iterator[Spell]:
    """An endless schedule: ``kinds`` in turn, each spell uniformly ``low``..``high`` long.

    Raises:
        UserError: fewer than two kinds, or bounds that are not ``0 < low <= high``.
    """
    if len(kinds) < 2:
        raise UserError(f"a schedule alternates at least two kinds, got {list(kinds)}")
    if not 0 < low <= high:
        raise UserError(f"spell lengths need 0 < low <= high, got {low:g}..{high:g}")
    rng = np.random.default_rng([seed, 18])
    i = 0
    while True:
        yield Spell(i, kinds[i % len(kinds)], float(rng.uniform(low, high)))
        i += 1


def announce(spell: Spell, **extra: object) -> None:
    """Print the line that says a spell begins now (flushed: the reader acts on it at once)."""
    body = {"index": spell.index, "kind": spell.kind, "length": spell.length, **extra}
    print(SPELL_PREFIX + json.dumps(body), flush=True)


def parse(line: str) -> Spell | None:
    """The spell a job's output line announces, or None for any other line."""
    if not line.startswith(SPELL_PREFIX):
        return None
    try:
        body = json.loads(line[len(SPELL_PREFIX) :])
        return Spell(int(body["index"]), str(body["kind"]), float(body["length"]))
    except (ValueError, KeyError, TypeError):
        return None
