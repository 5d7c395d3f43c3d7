"""Online adaptation: a bandit over the policy's neighbouring settings, learning from the live job.

The offline policy picks a ladder level per knob; where it leaves gain on the table (the replay
model was wrong about this node, or the job is one nobody recorded), the :class:`Adapter` tries
settings near it and keeps what the job's own progress says is better:

* **arms** are offsets from the policy's wish, at most one rung up or down per knob
  (``radius``), so the policy stays in charge and the adapter only corrects it; a move changes
  one knob by one rung (or goes back to the policy's wish). Evidence is kept per setting in
  effect (absolute ladder levels), so it survives the policy changing its mind;
* **discounted UCB** (Garivier & Moulines, 2011): every interval each setting's evidence weighs
  ``0.5 ** (1 / halflife)`` of what it weighed before, so old rates fade (a neighbour comes and
  goes), and an arm left alone for long gets a large bonus again (it is re-explored). A setting
  never tried starts at the current setting's estimate, with one interval's weight;
* **a change point** under an unchanged setting (its last ``hold`` intervals against the ones
  before, by more than twice the margin and twice the standard error: the guard's own test)
  cuts every other setting's evidence to half an interval's weight, each keeping its rate
  relative to the current setting's: the node changed, what was learnt about the other
  settings is stale, and the bonus makes the adapter look again, the good ones first;
* **bounded**: an arm is kept at least ``hold`` intervals (one guard canary window and one
  interval to settle), one arm change at a time, never a setting the guard refuses now (held
  off after a rollback, in its dwell, more weight on a quiet node) and never while the guard
  warms up, judges a canary or holds a fallback. A move needs its upper bound to beat the
  current setting's estimate by ``margin`` (a change cost: no churn between equals). Every
  change still goes through the guard, which canaries it and rolls it back.

Rates are divided by the guard's reference rate (the job at default knobs), so the estimates
read as "× default"; the noise is the successive differences of the rate under an unchanged
setting. Pure logic, no I/O: the loop calls :meth:`Adapter.wish` before the guard and
:meth:`Adapter.annotate` after it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from autotune.config import Settings
from autotune.daemon.guard import Guard, GuardConfig, Verdict, worse
from autotune.knobs import KNOBS

Levels = npt.NDArray[np.int64]
Key = tuple[int, ...]
SIGMA_PRIOR = 0.10  # the rate's noise, as a share of the reference, before any is measured
SIGMA_FLOOR = 0.02
HISTORY = 40  # moves and change points kept for the summary
# After a change point another setting keeps its standing against the current one (its rate
# relative to the current's, applied to the new rate) but only this much weight: the bonus makes
# the adapter look at it again, the ones that were good first.
CHANGE_POINT_WEIGHT = 0.5
READ_MBPS = 1.0  # below this the job reads nothing that read-ahead could change


@dataclass(frozen=True)
class AdaptConfig:
    """The adapter's limits, in control intervals.

    Attributes:
        hold: intervals an arm is kept at least (at least the guard's canary window + 1).
        halflife: intervals after which a rate weighs half.
        margin: relative gain over the current setting's estimate a move must promise.
        explore: the UCB bonus, in standard deviations of the rate's noise.
        radius: rungs per knob the adapter may go from the policy's wish.
        settle: intervals after a change whose rate is not counted (the change takes hold).
        seed: breaks ties between settings equally promising.
    """

    hold: int = 8
    halflife: int = 60
    margin: float = 0.05
    explore: float = 1.0
    radius: int = 1
    settle: int = 1
    seed: int = 0

    @classmethod
    def for_interval(
        cls, interval_s: float, guard: GuardConfig, settings: Settings | None = None
    ) -> AdaptConfig:
        """The settings' ``adapt_*`` seconds in intervals of ``interval_s``; the hold is at
        least the guard's canary window and one interval to settle."""
        s = settings or Settings.model_validate({})
        return cls(
            hold=max(guard.canary + 1, round(s.adapt_hold_s / interval_s)),
            halflife=max(2, round(s.adapt_halflife_s / interval_s)),
            margin=s.adapt_margin,
        )


@dataclass
class _Evidence:
    w: float = 0.0  # discounted count
    s: float = 0.0  # discounted sum of rates (× reference)

    @property
    def mean(self) -> float:
        return self.s / self.w if self.w > 0 else 0.0


@dataclass
class Move:
    """One arm change the adapter made (or a change point it saw)."""

    t: int
    what: str
    estimate: float  # the current setting's estimate before (× default)
    bound: float  # the new arm's upper bound (× default); 0 for a change point


@dataclass
class Adapter:
    """Chooses, each interval, what the guard is asked for: the policy's wish or a neighbour."""

    cfg: AdaptConfig = field(default_factory=AdaptConfig)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.cfg.seed)
        self.gamma = 0.5 ** (1.0 / self.cfg.halflife)
        self.delta = np.zeros(len(KNOBS), dtype=np.int64)  # the arm: offset from the wish
        self.evidence: dict[Key, _Evidence] = {}
        self.t = 0
        self.last_move = -(10**9)
        self.run_key: Key | None = None  # the setting in effect, and intervals since it is
        self.since_change = 0
        self.recent: dict[Key, deque[float]] = {}  # each setting's last rates (change points)
        self.sq_diff = _Evidence()  # discounted squared successive differences (the noise)
        self.moves: list[Move] = []
        self.change_points = 0
        self.note = ""  # why the last move was made (a decision's reason)
        self._before_move = self.delta.copy()
        self._wish = self.delta.copy()
        self._target = self.delta.copy()

    # --- evidence ---------------------------------------------------------------------------

    @property
    def sigma(self) -> float:
        """The rate's noise (× reference) from successive differences under one setting."""
        if self.sq_diff.w < 2:
            return SIGMA_PRIOR
        return max(SIGMA_FLOOR, math.sqrt(self.sq_diff.mean / 2.0))

    def estimate(self, key: Key) -> float:
        """The discounted mean rate of a setting (× default); 0 when never seen."""
        e = self.evidence.get(key)
        return e.mean if e is not None else 0.0

    def _observe(self, key: Key, r: float) -> None:
        for e in self.evidence.values():
            e.w *= self.gamma
            e.s *= self.gamma
        if key != self.run_key:
            self.run_key, self.since_change = key, 0
        self.since_change += 1
        if self.since_change <= self.cfg.settle:
            return
        run = self.recent.setdefault(key, deque(maxlen=4 * self.cfg.hold))
        if self.since_change > self.cfg.settle + 1:  # the last rate was under this setting too
            d = r - run[-1]
            self.sq_diff.w = self.sq_diff.w * self.gamma + 1.0
            self.sq_diff.s = self.sq_diff.s * self.gamma + d * d
        run.append(r)
        e = self.evidence.setdefault(key, _Evidence())
        e.w += 1.0
        e.s += r
        self._change_point(key, run)

    def _change_point(self, key: Key, run: deque[float]) -> None:
        """Under one setting, its last ``hold`` rates against those before: if the node moved,
        every other setting's evidence is cut to one interval's weight (re-explore)."""
        n = self.cfg.hold
        if len(run) < 2 * n:
            return
        rates = list(run)
        before, after = rates[:-n], rates[-n:]
        threshold = 2.0 * self.cfg.margin
        if not (worse(before, after, threshold) or worse(after, before, threshold)):
            return
        now = float(np.mean(after))
        change = now / max(float(np.mean(before)), 1e-12) - 1.0
        was = max(self.estimate(key), 1e-12)
        for k, e in self.evidence.items():
            if k != key and e.w > 0:
                w = min(e.w, CHANGE_POINT_WEIGHT)
                e.s, e.w = w * e.mean / was * now, w
        self.evidence[key] = _Evidence(float(n), float(sum(after)))
        self.recent = {key: deque(after, maxlen=run.maxlen)}
        self.change_points += 1
        self._history(Move(self.t, f"change point: progress {change:+.0%} under one setting", 0, 0))

    def _history(self, m: Move) -> None:
        self.moves = [*self.moves, m][-HISTORY:]

    def _bound(self, key: Key, prior: float, total: float) -> float:
        e = self.evidence.get(key, _Evidence())
        w = e.w + 1.0  # one pseudo-interval at the current setting's estimate
        mean = (e.s + prior) / w
        return mean + self.cfg.explore * self.sigma * math.sqrt(2.0 * math.log(total) / w)

    # --- the hook ---------------------------------------------------------------------------

    def wish(
        self, wish: Levels, rate: float, guard: Guard, disabled: Container[str] = ()
    ) -> Levels:
        """What to ask the guard for, given the policy's ``wish``, the last interval's progress
        ``rate`` and the guard before its step (its levels were in effect during the interval:
        the guard's, not the knobs read back, which lag a change and can disagree where a role
        has no process). ``disabled``: knob names the actuators gave up on (never explored)."""
        self.t += 1
        wish = np.asarray(wish, dtype=np.int64)
        current = guard.levels.copy()
        self._wish = wish.copy()
        self.note = ""
        ref = guard.reference_rate
        if ref > 0 and not guard.warming_up:
            self._observe(tuple(int(x) for x in current), rate / ref)
        if guard.idle() and self.t - self.last_move >= self.cfg.hold:
            self._choose(wish, current, guard, disabled)
        self._target = self._levels(wish, self.delta)
        return self._target.copy()

    def _levels(self, wish: Levels, delta: Levels) -> Levels:
        top = np.array([k.levels - 1 for k in KNOBS], dtype=np.int64)
        return np.clip(wish + delta, 0, top)

    def _effect(self, target: Levels, current: Levels, guard: Guard) -> Levels:
        """The levels the guard's next step would leave in effect for ``target``."""
        out = current.copy()
        for i in np.flatnonzero(target != current):
            level = int(current[i] + np.sign(target[i] - current[i]))
            if not guard.refuses(int(i), level, wish=int(target[i])):
                out[i] = level
        return out

    def _choose(
        self, wish: Levels, current: Levels, guard: Guard, disabled: Container[str]
    ) -> None:
        here = tuple(int(x) for x in current)
        arm = self._effect(self._levels(wish, self.delta), current, guard)
        if not np.array_equal(arm, current):
            return  # the guard is still walking to the arm (or the policy moved): wait
        seen = self.evidence.get(here)
        if seen is None or seen.w < 1.0:
            return  # nothing measured here yet
        estimate = seen.mean
        candidates: list[tuple[Levels, Levels, Key]] = []
        for delta in self._arms(disabled, reads=_reads(guard)):
            eff = self._effect(self._levels(wish, delta), current, guard)
            key = tuple(int(x) for x in eff)
            if key != here and all(key != c[2] for c in candidates):
                candidates.append((delta, eff, key))
        if not candidates:
            return
        total = max(math.e, sum(e.w for e in self.evidence.values()) + 1.0)
        bounds = np.array([self._bound(c[2], estimate, total) for c in candidates])
        # Among equals (settings never tried), first the ones that go on where the policy went
        # from the default (it asked 4x: try 8x before 2x), which is where an offline policy
        # trained on a model that underrates a knob leaves its gain.
        onward = np.array([_onward(c[1], current, wish, guard.defaults) for c in candidates])
        best = np.flatnonzero(bounds >= bounds.max() - 1e-12)
        if onward[best].any():
            best = best[onward[best]]
        pick = int(self.rng.choice(best))
        if bounds[pick] <= estimate * (1.0 + self.cfg.margin):
            return  # nothing promises enough to pay the change
        delta, eff, key = candidates[pick]
        self._before_move = self.delta
        self.delta = delta
        self.last_move = self.t
        what = _describe(current, eff, wish)
        self.note = (
            f"adapt: {what}: up to {bounds[pick]:.2f}× default "
            f"(seen {self.estimate(key):.2f}×, weight {self.evidence.get(key, _Evidence()).w:.1f}) "
            f"against {estimate:.2f}× here"
        )
        self._history(Move(self.t, what, estimate, float(bounds[pick])))

    def _arms(self, disabled: Container[str], reads: bool) -> list[Levels]:
        """The arms one move from the current one: one knob one rung, within ``radius`` of the
        wish; and the policy's own wish. Not a knob the actuators gave up on, nor read-ahead
        while the job reads nothing (it cannot matter then)."""
        out = [np.zeros(len(KNOBS), dtype=np.int64)]
        for i, k in enumerate(KNOBS):
            if k.name in disabled or (k.family == "readahead" and not reads):
                continue
            for step in (-1, 1):
                d = self.delta.copy()
                d[i] += step
                if abs(int(d[i])) <= self.cfg.radius:
                    out.append(d)
        return out

    def annotate(self, verdict: Verdict) -> Verdict:
        """After the guard's step: the adapter's reason on the knobs it moved, and its arm back
        where the guard put the knobs (a rollback, a fallback, a restart)."""
        if verdict.event == "rollback":
            if self.t - self.last_move <= self.cfg.hold:  # the change judged was this arm's
                self.delta = self._before_move.copy()
            self.last_move = self.t
            return verdict
        if verdict.event in ("fallback", "restart"):
            self.delta = np.zeros_like(self.delta)
            if verdict.event == "restart":  # rates from now on are in another unit
                self.evidence.clear()
                self.recent.clear()
                self.run_key = None
            self.last_move = self.t
            return verdict
        if self.note:
            for i, k in enumerate(KNOBS):
                if k.name in verdict.reasons and self._target[i] != self._wish[i]:
                    verdict.reasons[k.name] = self.note
        return verdict

    # --- what it did ------------------------------------------------------------------------

    def metrics(self) -> dict[str, float]:
        """Per interval, for tracking: the arm's size, the estimate here, the noise."""
        here = self.run_key
        return {
            "adapt_offset": float(np.abs(self.delta).sum()),
            "adapt_estimate": self.estimate(here) if here is not None else 0.0,
            "adapt_noise": self.sigma,
            "adapt_change_points": float(self.change_points),
        }

    def status(self) -> str:
        """One line for the live view."""
        here = self.run_key
        est = f"{self.estimate(here):.2f}× default here" if here is not None else "measuring"
        off = ", ".join(f"{k.name}{int(d):+d}" for k, d in zip(KNOBS, self.delta, strict=True) if d)
        return (
            f"adapt: {off or 'the policy'} · {est} · {len(self.evidence)} settings seen · "
            f"{self.change_points} change points"
        )

    def summary(self) -> dict[str, Any]:
        """The settings tried, each with its estimate and weight; the moves; change points."""
        arms = sorted(self.evidence.items(), key=lambda kv: -kv[1].mean)
        return {
            "settings": [
                {
                    "knobs": {k.name: k.value(i) for k, i in zip(KNOBS, key, strict=True)},
                    "estimate": round(e.mean, 4),
                    "weight": round(e.w, 2),
                }
                for key, e in arms
            ],
            "moves": [m.__dict__ for m in self.moves],
            "change_points": self.change_points,
            "noise": round(self.sigma, 4),
        }


def _onward(new: Levels, current: Levels, wish: Levels, defaults: Levels) -> bool:
    """Whether a move takes a knob further from its default the way the policy took it."""
    moved = np.flatnonzero(new != current)
    return bool(moved.size) and all(
        wish[i] != defaults[i] and np.sign(new[i] - current[i]) == np.sign(wish[i] - defaults[i])
        for i in moved
    )


def _reads(guard: Guard) -> bool:
    """Whether the job read from its devices lately (the guard's canary window)."""
    return bool(guard.reading) and float(np.mean(guard.reading)) >= READ_MBPS


def _describe(current: Levels, new: Levels, wish: Levels) -> str:
    parts = []
    for i in np.flatnonzero(new != current):
        k = KNOBS[int(i)]
        off = int(new[i] - wish[i])
        side = f"{off:+d} from the policy" if off else "the policy's"
        parts.append(f"{k.name} {k.value(int(current[i])):g} → {k.value(int(new[i])):g} ({side})")
    return "; ".join(parts)
