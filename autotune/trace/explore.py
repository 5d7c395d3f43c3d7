"""`record --explore`: visit distinct knob settings inside the knob table's ladders.

The schedule starts with the knobs as found, then moves one knob at a time away from its
starting value (the ladder's ends first, then its middle), round-robin over the knobs so that a
short recording still sees every family, and ends in seeded random combinations. Each setting
is held for ``hold_s`` seconds: long enough for several intervals to measure it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from typing import Protocol

from autotune.knobs import by_name

# Several control intervals at the default 250 ms: enough to see a setting's effect settle.
DEFAULT_HOLD_S = 5.0
# Values visited per knob in the one-at-a-time sweep before random combinations begin.
SWEEP_VALUES = 3


class Actuated(Protocol):
    """What the explorer needs of :class:`autotune.actuators.Actuators`."""

    @property
    def disabled(self) -> dict[str, str]: ...

    def current(self) -> dict[str, float]: ...

    def apply(self, values: dict[str, float], reason: str = ...) -> dict[str, float]: ...

    def follow(self) -> object: ...


def spread(ladder: tuple[float, ...], start: float) -> list[float]:
    """Ladder values in visiting order: lowest, highest, then midpoints; ``start`` left out."""
    order: list[int] = [0, len(ladder) - 1]
    spans = [(0, len(ladder) - 1)]
    while spans:
        lo, hi = spans.pop(0)
        if hi - lo < 2:
            continue
        mid = (lo + hi) // 2
        order.append(mid)
        spans += [(lo, mid), (mid, hi)]
    seen: list[float] = []
    for i in order:
        v = ladder[i]
        if v not in seen and v != start:
            seen.append(v)
    return seen


def snap(name: str, value: float) -> float:
    """The ladder value nearest ``value`` (a value found on the machine may be off-ladder)."""
    knob = by_name(name)
    return knob.value(knob.index(value))


def schedule(
    start: Mapping[str, float], seed: int = 0, sweep: int = SWEEP_VALUES
) -> Iterator[dict[str, float]]:
    """Endless settings (knob name → ladder value) for the knobs in ``start``.

    The first is ``start`` snapped to the ladders; each later one differs from it in one knob
    until the sweep is done, then every knob is drawn at random (seeded: reproducible).
    """
    base = {name: snap(name, v) for name, v in start.items()}
    yield dict(base)
    sweeps = {name: spread(by_name(name).ladder, v)[:sweep] for name, v in base.items()}
    for i in range(sweep):
        for name, values in sweeps.items():
            if i < len(values):
                yield {**base, name: values[i]}
    rng = random.Random(seed)
    names = sorted(base)
    while True:
        yield {name: rng.choice(by_name(name).ladder) for name in names}


class Explorer:
    """Drives the actuators through :func:`schedule`, one setting every ``hold_s`` seconds.

    Args:
        act: an open actuator session.
        hold_s: seconds each setting is held.
        seed: seed of the random part of the schedule.
    """

    def __init__(self, act: Actuated, hold_s: float = DEFAULT_HOLD_S, seed: int = 0) -> None:
        self.act = act
        self.hold_s = hold_s
        self.seed = seed
        self._known: set[str] = set()
        self._steps = self._schedule()
        self._next_at: float | None = None
        self.visited = 0

    def _schedule(self) -> Iterator[dict[str, float]]:
        """A schedule over every knob the actuators can move now.

        A knob read back only once the job does something (read-ahead once it opens a file on
        a block device) joins when it appears; the DataLoader prefetch depth, which the job
        acknowledges only once asked, starts from PyTorch's default.
        """
        start = {k: v for k, v in self.act.current().items() if k not in self.act.disabled}
        prefetch = by_name("prefetch.loader")
        if prefetch.name not in start and prefetch.name not in self.act.disabled:
            start[prefetch.name] = float(prefetch.default or 2.0)
        self._known = set(start)
        return schedule(start, self.seed + len(self._known))

    def in_effect(self) -> dict[str, float]:
        """The knob values in effect now, as the actuators read them back."""
        return self.act.current()

    def advance(self, now: float) -> None:
        """Once per interval: keep new threads under the setting; move on when it was held."""
        self.act.follow()
        if self._next_at is not None and now < self._next_at:
            return
        self._next_at = now + self.hold_s
        current = self.act.current()
        if set(current) - self._known - set(self.act.disabled):
            self._steps = self._schedule()  # a knob appeared: explore it too
            next(self._steps)  # its first setting is the knobs as they are
        setting = next(self._steps)
        self.visited += 1
        if self.visited == 1:
            return  # the first setting is the knobs as found (snapped): record them untouched
        changes = {
            k: v
            for k, v in setting.items()
            if k not in self.act.disabled
            and current.get(k, by_name(k).default) is not None
            and current.get(k, by_name(k).default) != v
        }
        if changes:
            self.act.apply(changes, reason="explore")
