"""The online adapter on synthetic rate streams, through the real guard (seeded noise).

Each stream is a function of the ladder levels in effect and the interval: the adapter and the
guard see only its noisy value, as the loop feeds them (the adapter before the guard's step, its
annotation after it)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest

from autotune.daemon.adapt import AdaptConfig, Adapter
from autotune.daemon.guard import Guard, GuardConfig
from autotune.knobs import KNOBS

GCFG = GuardConfig(warmup=6, dwell=2, canary=3, threshold=0.10, holdoff=40, fallback_window=60)
ACFG = AdaptConfig(hold=4, halflife=40, margin=0.05)
DEFAULT = np.array([2, 2, 3, 3, 3, 1])  # 1x weights, all CPUs, 128 KiB, prefetch 2
W = {k.name: i for i, k in enumerate(KNOBS)}
WT = W["weight.trainer"]
WISH = DEFAULT.copy()
WISH[WT] = 3  # the policy asks 2x for the trainer
NOISE = 0.03

RateOf = Callable[[np.ndarray, int], float]


def simulate(
    rate_of: RateOf, steps: int, seed: int = 0, wish: np.ndarray = WISH
) -> tuple[Adapter, list[np.ndarray], list[np.ndarray], list[str]]:
    """Run the loop's hook for ``steps`` intervals: levels in effect, targets asked, events."""
    guard, adapter = Guard(DEFAULT, GCFG), Adapter(ACFG)
    rng = np.random.default_rng(seed)
    levels = DEFAULT.copy()
    seen, asked, events = [], [], []
    for t in range(steps):
        rate = rate_of(levels, t) * (1.0 + NOISE * rng.standard_normal())
        target = adapter.wish(wish, rate, guard)
        verdict = adapter.annotate(guard.step(rate, target))
        seen.append(levels.copy())
        asked.append(target)
        events.append(verdict.event)
        levels = verdict.levels
    return adapter, seen, asked, events


def best_up(levels: np.ndarray, t: int) -> float:
    """The policy's 2x for the trainer is 10 % faster than default, 4x (one rung above) 30 %;
    any other knob off the policy's setting costs 15 %."""
    rate = 100.0 * {WISH[WT]: 1.1, WISH[WT] + 1: 1.3}.get(int(levels[WT]), 1.0)
    off = np.flatnonzero(levels != WISH)
    return rate * (0.85 if any(i != WT for i in off) else 1.0)


def share_at(seen: list[np.ndarray], knob: int, level: int, since: int) -> float:
    return float(np.mean([s[knob] == level for s in seen[since:]]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_finds_the_better_neighbour(seed: int) -> None:
    adapter, seen, _, _ = simulate(best_up, 400, seed)
    assert share_at(seen, WT, WISH[WT] + 1, 250) > 0.8
    best = adapter.summary()["settings"][0]
    assert best["knobs"]["weight.trainer"] == 4.0
    assert best["estimate"] > 1.1  # × the default's rate (the warm-up at 1x)


def test_keeps_the_policy_where_it_is_best() -> None:
    flat_best = lambda levels, t: 100.0 * (1.0 if np.array_equal(levels, WISH) else 0.85)  # noqa: E731
    adapter, seen, _, _ = simulate(flat_best, 400)
    at_wish = np.mean([np.array_equal(s, WISH) for s in seen[200:]])
    assert at_wish > 0.8  # neighbours are tried now and then, and left
    assert adapter.summary()["settings"][0]["knobs"]["weight.trainer"] == 2.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_re_explores_after_a_change_point(seed: int) -> None:
    # Until interval 300 the rung above the policy is best; from then on it is only 5 % faster
    # than default and the rung below is best (a neighbour left the node, say). Nothing falls
    # under the default's rate: the guard has no reason to step in, the adapter must see it.
    def shifting(levels: np.ndarray, t: int) -> float:
        up, down = (1.3, 1.0) if t < 300 else (1.05, 1.3)
        rate = 100.0 * {WISH[WT]: 1.1, WISH[WT] + 1: up, WISH[WT] - 1: down}[int(levels[WT])]
        off = np.flatnonzero(levels != WISH)
        return rate * (0.85 if any(i != WT for i in off) else 1.0)

    adapter, seen, _, events = simulate(shifting, 700, seed)
    assert share_at(seen[:300], WT, WISH[WT] + 1, 200) > 0.8
    assert share_at(seen, WT, WISH[WT] - 1, 550) > 0.8
    assert adapter.change_points >= 1
    assert "fallback" not in events


@pytest.mark.parametrize("seed", range(5))
def test_never_leaves_the_guards_bounds(seed: int) -> None:
    # Every setting has its own rate, drawn once: the adapter roams; the guard must hold.
    table: dict[tuple[int, ...], float] = {}
    draws = np.random.default_rng(100 + seed)

    def anything(levels: np.ndarray, t: int) -> float:
        key = tuple(int(x) for x in levels)
        if key not in table:
            table[key] = 100.0 * float(draws.uniform(0.4, 1.4))
        return table[key]

    adapter, seen, asked, events = simulate(anything, 600, seed)
    for t, (prev, now) in enumerate(itertools.pairwise(seen)):
        if events[t] != "fallback":  # the guard's fallback goes to default at once
            assert np.abs(now - prev).max() <= 1  # one rung per knob per interval
    for target in asked:
        assert np.abs(target - WISH).max() <= ACFG.radius  # never far from the policy
    moves = [m.t for m in adapter.moves if not m.what.startswith("change point")]
    assert all(b - a >= ACFG.hold for a, b in itertools.pairwise(moves))
    assert all(t > GCFG.warmup for t in moves)  # nothing during the warm-up
    # A setting the guard rolled back is not asked for again while it is held off.
    for t, event in enumerate(events):
        if event != "rollback":
            continue
        undone = np.flatnonzero(seen[t] != seen[t + 1]) if t + 1 < len(seen) else []
        for i in undone:
            bad = int(seen[t][i])
            later = [a[i] for a in asked[t + 1 : t + GCFG.holdoff - 1]]
            assert bad not in later or WISH[i] == bad


def test_a_restart_forgets_and_goes_back_to_the_policy() -> None:
    guard, adapter = Guard(DEFAULT, GCFG), Adapter(ACFG)
    levels = DEFAULT.copy()
    for t in range(120):
        rate = best_up(levels, t)
        v = adapter.annotate(guard.step(rate, adapter.wish(WISH, rate, guard), "proxy"))
        levels = v.levels
    assert adapter.evidence
    rate = 400.0
    v = adapter.annotate(guard.step(rate, adapter.wish(WISH, rate, guard), "client"))
    assert v.event == "restart"
    assert not adapter.evidence
    assert not adapter.delta.any()


def test_its_reason_is_on_the_knob_it_moved() -> None:
    guard, adapter = Guard(DEFAULT, GCFG), Adapter(ACFG)
    levels, notes = DEFAULT.copy(), []
    for t in range(200):
        rate = best_up(levels, t)
        v = adapter.annotate(guard.step(rate, adapter.wish(WISH, rate, guard)))
        notes += [why for why in v.reasons.values() if why.startswith("adapt:")]
        levels = v.levels
    assert any("weight.trainer 2 → 4" in n and "× default" in n for n in notes), notes
    assert "adapt:" in adapter.status()
    assert set(adapter.metrics()) >= {"adapt_estimate", "adapt_offset"}
