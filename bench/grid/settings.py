"""Which settings the grid runs: the default, at least five per knob family spread over its ladder
(settings the workload's recording never visited first), the replay's current pick, and the
combined settings a person would try once the single-family runs are in.

Every setting is a change from the run's *base* (the default: read-ahead as the recording
started, or :data:`~autotune.knobs.READAHEAD_DEFAULT_KB` for a job nobody recorded); nothing
here is tied to a particular workload.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autotune.knobs import Family, by_name, of_family
from workloads.knobs import format_knobs

DEFAULT = "default"
COMBINED = "combined"
PER_FAMILY = 5


@dataclass
class Setting:
    """One point of the grid.

    Attributes:
        knobs: knob → ladder value, the changes from the base (empty: the default).
        family: the knob family it varies, ``default``, or ``combined`` (more than one family).
        seen: the workload's recording visited it (so calibration saw it).
        replay_pick: it is the replay's static-best when the grid was planned.
        why: for a combined setting, how it was chosen.
    """

    knobs: dict[str, float]
    family: str = DEFAULT
    seen: bool = False
    replay_pick: bool = False
    why: str = ""

    @property
    def label(self) -> str:
        return label(self.knobs)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "setting": self.label,
            "knobs": self.knobs,
            "family": self.family,
            "seen_in_recording": self.seen,
            "replay_pick": self.replay_pick,
        }
        if self.why:
            out["why"] = self.why
        return out


def label(knobs: Mapping[str, float]) -> str:
    """``weight.loader=8,weight.trainer=8``; ``default`` for no change."""
    return format_knobs(knobs) if knobs else DEFAULT


def family_of(knobs: Mapping[str, float]) -> str:
    families = {str(by_name(k).family) for k in knobs}
    if not families:
        return DEFAULT
    return families.pop() if len(families) == 1 else COMBINED


def key(full: Mapping[str, float]) -> str:
    return json.dumps({k: float(v) for k, v in full.items()}, sort_keys=True)


def spread(values: Sequence[float], n: int) -> list[float]:
    """``values`` reordered so that the first ``n`` are spread evenly over them (ends included)."""
    if len(values) <= n:
        return list(values)
    idx = [round(i * (len(values) - 1) / (n - 1)) for i in range(n)]
    first = [values[i] for i in dict.fromkeys(idx)]
    return first + [v for v in values if v not in first]


def candidates(family: Family, base: Mapping[str, float]) -> list[dict[str, float]]:
    """Changes from ``base`` within one family, most telling first.

    Weights and affinity: both roles together at each rung off the default (spread over the
    ladder), then each role alone; read-ahead and the rest: each rung off the base, spread.
    """
    knobs = of_family(family)
    off = {k.name: [v for v in k.ladder if v != base.get(k.name)] for k in knobs}
    out: list[dict[str, float]] = []
    if family in (Family.WEIGHTS, Family.AFFINITY) and len(knobs) > 1:
        first = knobs[0]
        both = [v for v in first.ladder if all(v in off[k.name] for k in knobs)]
        out += [{k.name: v for k in knobs} for v in spread(both, PER_FAMILY)]
        for v in spread(off[first.name], len(off[first.name])):
            for k in knobs:
                if v in off[k.name]:
                    out.append({k.name: v})
    else:
        for k in knobs:
            out += [{k.name: v} for v in spread(off[k.name], PER_FAMILY)]
    unique: dict[str, dict[str, float]] = {}
    for c in out:
        unique.setdefault(key(c), c)
    if family is Family.AFFINITY:
        return distinct_first(list(unique.values()), base, os.cpu_count() or 1)
    return list(unique.values())


def cores(share: float, n: int) -> int:
    """Whole cores a CPU share means on ``n`` cores (as the affinity actuator rounds it)."""
    return max(1, min(n, math.floor(share * n + 0.5)))


def distinct_first(
    cands: list[dict[str, float]], base: Mapping[str, float], n: int
) -> list[dict[str, float]]:
    """Affinity candidates, those that place the roles differently on this node first: on 2
    cores 0.25 and 0.5 both mean one core and 0.75 means both, so the default again."""

    def placed(c: Mapping[str, float]) -> tuple[int, ...]:
        return tuple(cores({**base, **c}.get(k.name, 1.0), n) for k in of_family(Family.AFFINITY))

    default = placed({})
    new, again, same = [], [], []
    met: set[tuple[int, ...]] = set()
    for c in cands:
        p = placed(c)
        if p == default:
            same.append(c)
        elif p in met:
            again.append(c)
        else:
            met.add(p)
            new.append(c)
    return new + again + same


def plan(
    base: Mapping[str, float],
    defaults: Mapping[str, float],
    visited: Iterable[Mapping[str, float]],
    replay_pick: Mapping[str, float] | None,
    per_family: int = PER_FAMILY,
) -> list[Setting]:
    """The first pass: default, ``per_family`` settings per family, and the replay's pick.

    Args:
        base: the default run's knobs (read-ahead).
        defaults: every knob's default for this workload (the recording's, or the table's).
        visited: full knob settings the recording visited (empty for a job nobody recorded).
        replay_pick: the replay's static-best as changes from the base (None: no recording).
        per_family: settings per family; unvisited ones first, visited ones fill up when the
            ladder has too few unvisited.
    """
    seen = {key(v) for v in visited}

    def full(change: Mapping[str, float]) -> str:
        return key({**defaults, **base, **change})

    out = [Setting({}, DEFAULT, seen=full({}) in seen)]
    for family in Family:
        cands = candidates(family, {**defaults, **base})
        fresh = [c for c in cands if full(c) not in seen]
        old = [c for c in cands if full(c) in seen]
        for c in (fresh + old)[:per_family]:
            out.append(Setting(c, str(family), seen=full(c) in seen))
    if replay_pick is not None:
        mark_pick(out, dict(replay_pick), lambda c: full(c) in seen)
    return out


def mark_pick(
    settings: list[Setting], pick: dict[str, float], is_seen: Any = lambda _c: False
) -> None:
    """Mark the replay's pick among ``settings``, adding it when it is not there yet."""
    for s in settings:
        if key(s.knobs) == key(pick):
            s.replay_pick = True
            return
    settings.append(
        Setting(pick, family_of(pick), seen=is_seen(pick), replay_pick=True, why="replay's pick")
    )


def combined(ratios: Mapping[str, float], settings: Sequence[Setting]) -> list[Setting]:
    """Settings a person would try next, from the first pass's ratios (label → ratio to
    default): 8× weights with the best read-ahead, and a core split with the best weights."""
    by_family: dict[str, list[Setting]] = {}
    for s in settings:
        if s.label in ratios:
            by_family.setdefault(s.family, []).append(s)

    def best(family: Family) -> Setting | None:
        group = by_family.get(str(family), [])
        return max(group, key=lambda s: ratios[s.label]) if group else None

    out: list[Setting] = []
    ra, w = best(Family.READAHEAD), best(Family.WEIGHTS)
    heavy = {k.name: k.ladder[-1] for k in of_family(Family.WEIGHTS)}
    if ra is not None:
        knobs = {**heavy, **ra.knobs}
        out.append(Setting(knobs, family_of(knobs), why="8x weights with the best read-ahead"))
    split = {k.name: 0.5 for k in of_family(Family.AFFINITY)}
    if all(0.5 in by_name(k).ladder for k in split):
        knobs = {**split, **(w.knobs if w is not None else heavy)}
        out.append(Setting(knobs, family_of(knobs), why="a core split with the best weights"))
    known = {key(s.knobs) for s in settings}
    return [s for s in out if key(s.knobs) not in known]
