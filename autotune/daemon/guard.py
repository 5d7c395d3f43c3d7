"""The guard between the policy and the node: what makes it safe to tune someone's job.

Pure logic (no I/O), fed once per interval with the job's progress and the policy's wish:

* **warm-up**: the first intervals run at the default knobs and set the reference rate (the job
  "as the machine had it"). The warm-up ends once the reference is known well enough: after at
  least ``warmup_min`` intervals, when the 95 % interval of the mean warm-up rate (Student's t)
  is narrower than ``fallback_margin`` of it on either side, the precision the fallback needs to
  tell a tuned job from its reference; at the latest after ``warmup`` intervals. A steady job
  thus tunes after a second or two, a noisy one after the full warm-up;
* **deferred warm-up** (``defer_warmup``): a noisy job tunes after ``warmup_min`` intervals too,
  and the rest of its warm-up is owed: once it has run tuned for ``fallback_window`` intervals,
  the knobs go back to default for the intervals owed (one more, whose rate mixes the two
  settings, is not counted), and then back to the tuned setting. The default time is the same,
  but it comes after the gain, and a job shorter than the window never pays it: on tinylm beside
  a CPU-bound neighbour (`bench/online`, 20 s runs) the 5 s warm-up at default knobs, with the
  ramp below, was most of what kept the tuned job at 0.66 of the best static setting. Off by
  default (docs/online-tuning.md): a reference from the job's first second left the canary
  unable to see a 4× fall (tests/daemon/test_tune.py's bad action); only the 30 s fallback
  caught it;
* **rate limits** from the knob table: a knob moves at most ``max_rungs`` ladder rungs in one
  change (1 by default; 3 takes weights 1× → 8× in one), and changes at most once every
  ``dwell`` intervals. A jump is judged by its canary as one change (read-ahead walked 128 →
  16 KiB in three small steps, each within its canary's noise, cost randread 11-13 %; one jump
  shows the whole fall at once);
* **fast retreat** (``fast_retreat``): a wish that takes knobs back toward their defaults goes
  in at once and whole (as far as the default), whatever the rung limit, the dwell or a change
  being judged say; the limits are for steps away from the reference, and a job whose best
  setting changes with its phases must be able to leave a setting as fast as its phase ends
  (:meth:`Guard._fast_moves`);
* **fast return** (``fast_return``, on in `autotune tune` since 2026-12-07): a knob level that
  was part of a change whose canary passed is *vetted*; a wish that takes the knob back to a
  vetted level goes in at once as a retreat does (past the rung limit and the dwell, even while
  a change is judged), until a rollback of a change with that level in it or a fallback. A job
  whose best setting changes with its phases thus pays a canary window once per setting, not
  once per phase: on mixed_io (4-8 s spells of streaming and of random reads) the policy asks
  for 1 MiB read-ahead in the first and 32 KiB in the second, and each switch waited 1.5-2.5 s
  (a dwell, a canary) before (:meth:`Guard._fast_moves`). Against it off in the same runs
  (bench/online, 5 rotated repeats, bench/results/online_return.json): mixed_io 1.048x [1.003,
  1.075] as fast, shards 1.049x [1.004, 1.135], neighbour_onoff 1.039x [1.018, 1.070] (its 8x
  weights back as the neighbour returns), randread 1.028x [1.006, 1.052]; cnn, cnn_noisy and
  tinylm 1.004-1.044x, within the noise;
* **one family per change** (``one_family``): where the wish moves knobs of several families
  (weights, cores, read-ahead, prefetch), only the first of them in the knob table's order
  moves now, and the next once its canary has passed; the order starts after the family
  changed last (round robin), so a policy that keeps retuning its weights does not keep the
  rest waiting. A canary judges a change as a whole, so a gain in one family hides a loss in
  another: on tinylm beside a CPU-bound neighbour the policy's 8x trainer weight with the cores
  split ran 455-497 samples/s where the same weights without the split ran 703-733
  (workloads.run, 2 runs each), yet the change as a whole was 6x the default rate and passed.
  Judged apart, the split's own fall is what its canary sees;
* **probing the families** (``probe_families``): the other way to attribute. A change of
  several families goes in whole, and once its canary has passed, each family in it but the
  weights goes back to default alone for a canary window: kept out (its setting held off) if
  the job is clearly faster without it (the canary's test the other way round), back
  otherwise. Only a clear loser goes: asked to prove its gain instead, families that helped
  randread were often taken out on the noise of one window (0.83x the plain guard's rate,
  bench/online). A combination whose parts only pay together keeps its gain from the first
  interval (randread's trainer on one core with 0.25x loaders and 32 KiB read-ahead: one family
  at a time ran it at 0.78 of the whole change, bench/online), and a family that loses is found
  after a canary window each. Both ways are off by default (docs/online-tuning.md has the
  figures): on the bench's 10-20 s jobs a window at a worse setting is a large share of the
  run, and four rates of a noisy job call a family neither way;
* **canary and rollback**: after a change, progress over the next ``canary`` intervals is
  compared with the ``canary`` intervals before it (with ``steady_baseline``, those of the
  setting in effect only: not the interval that mixes it with the setting before, and after a
  rollback the rates the rolled-back change was judged against; :meth:`Guard._baseline`); if
  it fell by more than ``threshold`` *and* by more than twice the standard error of the
  difference (a window, not one sample), the change is reverted and the new levels it set are
  held off for ``holdoff`` intervals. A change that costs ``early_fall`` or more (30 % in
  `autotune tune`) is reverted after half the window, the same test on the rates so far
  (:meth:`Guard._early_fall`). One change is judged at a time;
* **fallback**: if the tuned job makes less than ``1 - fallback_margin`` of the reference rate
  over the last ``fallback_window`` intervals, every knob goes back to default, and stays there
  for ``fallback_window`` intervals. Sooner, once it has run tuned as long as the warm-up (and
  a canary), no change being judged, when it is already below that *and* the fall is clear of
  the noise (as for the canary): small steps that each pass their canary can add up to a loss
  (read-ahead walked 128 → 16 KiB in three steps cost randread 11-13 %, which the 30 s window
  alone let run for 30 s);
* **no extra weight against the job's own I/O**: while the job reads at least ``io_mbps`` MB/s
  and other tasks want less than ``min_contention`` of the node's CPUs (both over the last
  ``canary`` intervals), a weight does not rise above 1×, and one above 1× steps back down. A
  heavier job can take CPU only from other tasks, and on a quiet node where the job reads hard
  those are mostly the kernel's workers serving its reads (the loop device's, the
  filesystem's): on randread, 2×/2× ran at 0.74 of default and 8× on the trainer at 0.78, while
  0.25×/0.25× ran at 1.09 (workloads.run, interleaved ×3). A job that reads little gains
  from the weights even on a quiet node (cnn: 8×/8× 1.08×), and beside a CPU-bound neighbour
  every job does;
* **restart**: progress is measured in one unit at a time. A job that starts reporting samples
  through ``autotune.client`` after its start-up (importing torch, spawning workers) was measured
  by the proxy until then (trainer CPU seconds per second, ~1 where samples/s is ~400): every knob
  goes back to default and the warm-up starts again in the new unit. Held-off settings stay held.
  With ``keep_on_restart``, the weights tuned during the start-up stay instead (the other
  families go back to default), if their change's canary has passed or has seen no fall in the
  two or more intervals it had, and otherwise the weights from before that change (its
  baseline: the start's, say, when the policy's first change came a moment before the job's
  first samples): the new unit's warm-up is owed (run as the deferred warm-up's is), and no
  knob moves until a canary window of the new unit's rates is there. Beside a
  CPU-bound neighbour the start-up is seconds at a few times the default rate, and the warm-up
  again put cnn_noisy back to default for 2.5 s of its 7 s of training (docs/online-tuning.md).
  The price: until the owed warm-up, nothing compares the kept weights with default knobs in
  the new unit (the changes after them have their canaries). Only the weights, because keeping
  the whole setting let one of five cnn_noisy runs keep a trainer pinned to one CPU since its
  start, which ran at the default rate (73 samples/s against ~470) until the owed warm-up 30 s
  later (bench/results/online_keep_all.json); a weight changes only how CPU time is shared;
* **the start-up's weights only** (``startup_hold``, off by default): while progress is still
  the start-up proxy (the trainer's CPU time, before the job's first samples through
  ``autotune.client``) and for at most ``startup_hold`` intervals, only the weights move. A
  core split, read-ahead or prefetch depth set then is judged by CPU seconds, not samples, and
  goes back to default when the job's own progress begins (``keep_on_restart`` keeps only the
  weights); meanwhile it runs beside the job's imports and worker start (docs/online-tuning.md
  has the measurement). A job that never reports its own progress tunes every family once the
  hold has passed;
* **seeded warm-up** (:meth:`Guard.seed`): rates at default knobs measured before the first
  step (the proxy from ``/proc`` while the telemetry compiles) count as the warm-up's first;
* **a start off default** (:meth:`Guard.start_at`): a job `autotune tune` starts beside a busy
  node gets its weights raised from its first instruction (``guard_start_weight``), not after
  the seconds the telemetry takes to compile; the guard begins as after a restart that kept
  the weights (the warm-up owed, the first change after a canary window of rates), and the
  rates seeded meanwhile are tuned rates, not the warm-up's.

Yielding to people and restoring on exit are the actuators' (they own the knobs); the watchdog
is the loop's.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import fmean, stdev, variance

import numpy as np
import numpy.typing as npt

from autotune.config import Settings
from autotune.knobs import KNOBS, Family
from autotune.telemetry.sample import PROGRESS_PROXY

Levels = npt.NDArray[np.int64]
# The fewest warm-up intervals that end a warm-up on its interval (a spread needs a few rates).
WARMUP_LEAST = 3
# Two-sided 95 % quantiles of Student's t for 1 to 9 degrees of freedom (then about 2.2 to 1.96;
# 2.26 at 9 is used from there, a little wide): the warm-up's interval of its mean rate.
T95 = (12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26)


def half_width95(values: Sequence[float]) -> float:
    """Half the width of the 95 % interval of the mean of ``values`` (Student's t; two values
    at least)."""
    n = len(values)
    return T95[min(n - 1, len(T95)) - 1] * stdev(values) / n**0.5


@dataclass(frozen=True)
class GuardConfig:
    """The guard's limits, in control intervals (500 ms by default in `autotune tune`).

    Attributes:
        warmup: the most intervals at default knobs before the first change (reference rate).
        warmup_min: the fewest; None: always ``warmup`` (a fixed warm-up).
        defer_warmup: end the warm-up after ``warmup_min`` intervals and run the rest, if the
            noise requires it, after ``fallback_window`` intervals of tuning.
        keep_on_restart: when progress changes unit, keep the tuned weights (their change's
            canary passed, or no fall in the two or more intervals it had; else the weights from
            before that change; the other families back to default), and owe the new unit's
            warm-up (run after ``fallback_window`` intervals) instead of going back to default
            first.
        fast_retreat: a wish that moves a knob back toward its default goes in at once and
            whole, without the rung limit or the dwell, even while a change is judged.
        fast_return: a wish that moves a knob to a level vetted by a passed canary goes in at
            once, as a retreat does (see the module).
        max_rungs: the most ladder rungs one knob moves in one change.
        one_family: a change moves the knobs of one family only (see the module).
        probe_families: after a change of several families passes its canary, take each but
            the weights back to default alone, and keep it out if the job is clearly faster.
        startup_hold: intervals from the start in which, while progress is the start-up proxy,
            only the weights move (0: every family from the first change).
        dwell: intervals between two changes of one knob.
        canary: intervals after a change before it is judged, and before it compared with.
        threshold: relative fall in progress that reverts a change (0.10: 10 %).
        early_fall: relative fall that reverts a change after half its canary window (two
            intervals at least), clear of the noise as any; 0: none before the whole window.
        steady_baseline: a change is compared with the rates of the setting in effect only
            (the interval that mixes it with the one before left out; after a rollback, the
            rates the rolled-back change was judged against), where two or more are there;
            otherwise, and when off, with the last ``canary`` rates whatever ran in them.
        holdoff: intervals a reverted setting is refused.
        fallback_window: intervals over which tuned progress is compared with the reference.
        fallback_margin: how far below the reference the tuned job may run before fallback.
        min_contention: share of the node's CPUs other tasks must want before a weight may
            rise above default while the job reads ``io_mbps`` or more.
        io_mbps: reads (MB/s) from which the job's I/O is served by other tasks' CPU.
    """

    warmup: int = 20
    warmup_min: int | None = None
    defer_warmup: bool = False
    keep_on_restart: bool = False
    fast_retreat: bool = False
    fast_return: bool = False
    max_rungs: int = 1
    one_family: bool = False
    probe_families: bool = False
    startup_hold: int = 0
    dwell: int = 8
    canary: int = 8
    threshold: float = 0.10
    early_fall: float = 0.0
    steady_baseline: bool = False
    holdoff: int = 120
    fallback_window: int = 120
    fallback_margin: float = 0.05
    min_contention: float = 0.5
    io_mbps: float = 100.0

    @classmethod
    def for_interval(cls, interval_s: float, settings: Settings | None = None) -> GuardConfig:
        """The settings' ``guard_*`` seconds (defaults: a warm-up of 1 to 5 s, 2 s dwell and
        canary, 30 s hold-off and fallback window) in intervals of ``interval_s``."""
        s = settings or Settings.model_validate({})

        def n(seconds: float, least: int) -> int:
            return max(least, round(seconds / interval_s))

        return cls(
            warmup=n(s.guard_warmup_s, 1),
            # Three rates at least: the interval of the mean needs a spread.
            warmup_min=min(n(s.guard_warmup_s, 1), n(s.guard_warmup_min_s, WARMUP_LEAST)),
            defer_warmup=s.guard_warmup_defer,
            keep_on_restart=s.guard_keep_on_restart,
            fast_retreat=s.guard_fast_retreat,
            fast_return=s.guard_fast_return,
            max_rungs=s.guard_max_rungs,
            one_family=s.guard_one_family,
            probe_families=s.guard_probe_families,
            startup_hold=round(s.guard_startup_hold_s / interval_s),
            dwell=n(s.guard_dwell_s, 1),
            canary=n(s.guard_canary_s, 2),
            threshold=s.guard_threshold,
            early_fall=s.guard_early_fall,
            steady_baseline=s.guard_steady_baseline,
            holdoff=n(s.guard_holdoff_s, 1),
            fallback_window=n(s.guard_fallback_s, 2),
            fallback_margin=s.guard_fallback_margin,
            min_contention=s.guard_min_contention,
            io_mbps=s.guard_io_mbps,
        )


@dataclass
class Verdict:
    """What the guard lets through this interval, and why."""

    levels: Levels
    reasons: dict[str, str] = field(default_factory=dict)  # knob name → why it moves
    # "", "warmup", "rollback", "fallback", "canary", "restart", "probe"; "reference" (the
    # deferred part of the warm-up, at default knobs) and "resume" (back to the tuned setting)
    event: str = ""


@dataclass
class _Canary:
    start: int  # interval of the change
    before: Levels
    after: Levels
    baseline: list[float]
    probe: bool = False  # a family taken out by the guard (probe_families), not a wish
    steady: bool = False  # the baseline is rates of ``before`` alone (steady_baseline)


class Guard:
    """Decides, each interval, which of the policy's wishes reach the knobs."""

    def __init__(self, defaults: Levels, config: GuardConfig | None = None) -> None:
        self.cfg = config or GuardConfig()
        self.defaults = np.asarray(defaults, dtype=np.int64).copy()
        self.held: dict[tuple[int, int], int] = {}  # (knob index, level) → refused until
        # (knob index, level) in a change whose canary passed (fast_return); a rollback of a
        # change with it, a fallback or a new unit of progress takes it out.
        self.vetted: set[tuple[int, int]] = set()
        self.source = ""
        self._last_family: Family | None = None  # the family of the last change (one_family)
        self.contention: deque[float] = deque(maxlen=self.cfg.canary)
        self.reading: deque[float] = deque(maxlen=self.cfg.canary)
        self._reset()

    def _reset(self) -> None:
        """Default knobs, a new warm-up; held-off settings stay held."""
        self.levels = self.defaults.copy()
        self.t = 0
        self.rates: deque[float] = deque(maxlen=max(self.cfg.fallback_window, 4 * self.cfg.canary))
        self.warmup_rates: list[float] = []
        self._warm = False  # the warm-up has ended
        self.owed = 0  # warm-up intervals deferred (defer_warmup)
        self._reference_left = 0  # intervals left of the deferred part, running now
        self._resume: Levels | None = None  # the tuned setting to go back to after it
        self.last_change = np.full(len(KNOBS), -(10**9), dtype=np.int64)
        self.canary: _Canary | None = None
        self._probes: list[Family] = []  # families to take out one at a time (probe_families)
        self.fallback_until = -1
        self.tuned_rates: deque[float] = deque(maxlen=self.cfg.fallback_window)
        # The rates measured at one setting, none of its intervals mixing it with another
        # (steady_baseline): the setting, and them.
        self._steady_for = self.levels.copy()
        self._steady: deque[float] = deque(maxlen=self.cfg.canary)
        self._last_ran = self.levels.copy()  # the setting of the interval before the last

    @property
    def reference_rate(self) -> float:
        """The job's progress at default knobs during warm-up (0 before it ends)."""
        return fmean(self.warmup_rates) if self.warmup_rates else 0.0

    @property
    def warming_up(self) -> bool:
        """Whether the last interval was still part of the warm-up (its deferred part too)."""
        return not self._warm or self._resume is not None

    def _reference_known(self) -> bool:
        """Whether the warm-up rates so far pin the reference rate down (see the module)."""
        n = len(self.warmup_rates)
        if n >= self.cfg.warmup:
            return True
        return self._at_floor() and self._precise()

    def _at_floor(self) -> bool:
        """Whether the warm-up has its fewest rates (``warmup_min``, and two for a spread)."""
        least = self.cfg.warmup_min
        return least is not None and len(self.warmup_rates) >= max(least, 2)

    def _precise(self) -> bool:
        """Whether the 95 % interval of the mean reference rate is within the fallback margin."""
        n = len(self.warmup_rates)
        mean = fmean(self.warmup_rates) if n else 0.0
        if n < 2 or mean <= 0:
            return False
        return half_width95(self.warmup_rates) < self.cfg.fallback_margin * mean

    def _end_warmup(self) -> bool:
        """Whether the warm-up ends now, deferring what the noise still asks for."""
        if self._reference_known():
            return True
        # Deferring, the first change waits for a canary's window of default rates at least:
        # its canary compares the change with them, and is all that guards it until the owed
        # part of the warm-up (a bad setting judged against fewer, from the job's first
        # second, passed its canary: see the module).
        if not (
            self.cfg.defer_warmup and self._at_floor() and len(self.warmup_rates) >= self.cfg.canary
        ):
            return False
        self.owed = self.cfg.warmup - len(self.warmup_rates)
        return True

    def step(
        self,
        rate: float,
        wish: Levels,
        source: str = "",
        contention: float | None = None,
        read_mbps: float | None = None,
    ) -> Verdict:
        """Feed the last interval's progress rate and the policy's wish; get what to apply.

        ``source``: what the rate measures (``client`` samples, the ``proxy``); when it changes,
        the guard starts again from the default knobs. ``contention``: the share of the node's
        CPUs other tasks wanted (on-CPU and waiting); ``read_mbps``: what the job read from its
        devices; either ``None`` (not measured) leaves the weights to the policy.
        """
        if contention is not None and read_mbps is not None:
            self.contention.append(contention)
            self.reading.append(read_mbps)
        if source != self.source:
            restarted = bool(self.source)
            self.source = source
            if restarted:
                return self._restart(rate, source)
        self.t += 1
        self.rates.append(rate)
        self._note_steady(rate)
        if not self._warm:
            self._warm = self._end_warmup()
        if not self._warm:
            self.warmup_rates.append(rate)
            return Verdict(self.levels.copy(), event="warmup")
        if self._resume is not None:
            return self._reference_interval(rate)
        if not np.array_equal(self.levels, self.defaults):
            self.tuned_rates.append(rate)
        verdict = self._judge_canary()
        if verdict is not None:
            return verdict
        verdict = self._check_fallback()
        if verdict is not None:
            return verdict
        if self.owed and self.canary is None and len(self.tuned_rates) >= self.cfg.fallback_window:
            return self._begin_reference()
        wish = np.asarray(wish, dtype=np.int64)
        back = self._fast_moves(wish)
        if self.canary is not None or self.t < self.fallback_until:
            event = "canary" if self.canary else "fallback"
            return Verdict(self.levels.copy(), back, event="" if back else event)
        verdict = self._probe() or self._limit(wish)
        verdict.reasons = {**back, **verdict.reasons}
        return verdict

    def _note_steady(self, rate: float) -> None:
        """Count the last interval's rate as the setting's own if that setting also ran the
        interval before (the first interval after a change mixes the two)."""
        ran = self.levels  # what the last verdict applied: the setting of the interval reported
        if not np.array_equal(self._steady_for, ran):
            self._steady_for = ran.copy()
            self._steady.clear()
        if np.array_equal(ran, self._last_ran):
            self._steady.append(rate)
        self._last_ran = ran.copy()

    def _baseline(self) -> tuple[list[float], bool]:
        """The rates a change made now is judged against, and whether they are the setting's
        own (``steady_baseline``: two or more rates of the setting in effect, no mixed interval;
        otherwise the last ``canary`` rates, whatever ran in them). Judged against the
        rolled-back change's rates, a change right after a rollback passes on a fall as large
        as that change's. On bench/online this paid 1.055x [1.017, 1.101] on mixed_io
        (bench/results/online_steady.json); the mixed_io run that first suggested it (an 8x
        trainer kept 12 s after an early rollback) was more likely the client's stall found
        later (autotune.client._install_guarded_put)."""
        if (
            self.cfg.steady_baseline
            and len(self._steady) >= 2
            and np.array_equal(self._steady_for, self.levels)
        ):
            return list(self._steady), True
        return list(self.rates)[-self.cfg.canary :], False

    def _fast_moves(self, wish: Levels) -> dict[str, str]:
        """``fast_retreat``: the knobs the policy wants back toward their defaults go there now,
        whole (as far as the default: a wish past it is a step away from there, as any), whatever
        the rung limit, the dwell or a change being judged say; with ``fast_return`` so do the
        knobs it wants at a vetted level (one a passed canary judged, past the default too).
        Returns why, per knob moved.

        The default knobs are the reference the guard holds the job to, so a step toward them
        needs no canary of its own; the limits are there for steps away. The policy often steps
        out and wants back the next interval (on mixed_io: the cores split, the loaders at
        0.25×, 32 KiB read-ahead); rate-limited, each excursion lasted a canary window. On
        bench/online (bench/results/online.json, against this off in the same runs) mixed_io
        ran 1.13× as fast, shards 1.10×, neighbour_onoff 1.03×; tinylm 0.91× (interval to
        1.02), and 1.015× [0.955, 1.110] over 8 repeats run again (online_retreat.json).
        A vetted level has been judged the same way already; the policy of a job with phases
        goes back to it at each phase (mixed_io's read-ahead, see the module).

        A change being judged that the step undoes only in part is judged again on what is
        left, against the same rates from before it, from now; one undone whole is not judged;
        a rollback after it leaves the knobs stepped back where they are. A knob moved to a
        vetted level leaves the change being judged the same way. Not during a family probe
        (its canary asks another question) nor a fallback's hold (at default already).
        """
        c = self.canary
        if not (self.cfg.fast_retreat or self.cfg.fast_return) or (c is not None and c.probe):
            return {}
        reasons: dict[str, str] = {}
        for i, k in enumerate(KNOBS):
            level, base, want = int(self.levels[i]), int(self.defaults[i]), int(wish[i])
            if self.cfg.fast_return and want != level and (i, want) in self.vetted:
                w, why = want, "policy, back to a setting its canary passed (fast return)"
            elif self.cfg.fast_retreat:
                w = min(max(want, min(level, base)), max(level, base))  # not past default
                why = "policy, back toward default (not rate-limited)"
            else:
                continue
            if w == level:
                continue
            until = self.held.get((i, w))
            if until is not None and self.t < until:
                continue
            self.levels[i] = w
            self.last_change[i] = self.t  # the dwell runs for the next step away
            reasons[k.name] = why
            if c is not None and (
                min(w, level) <= c.before[i] <= max(w, level) or (i, w) in self.vetted
            ):
                # Not part of the change being judged, or its part undone whole: a rollback
                # leaves it where the policy asked, never back up to where it was before.
                c.before[i] = w
                c.steady = False  # the baseline's rates were not of this setting
        if reasons and c is not None:
            if np.array_equal(self.levels, c.before):
                self.canary = None
            else:
                c.after = self.levels.copy()
                c.start = self.t
        return reasons

    def _probe(self) -> Verdict | None:
        """Take the next family queued by a passed multi-family change back to default, judged
        by a canary of its own (``probe_families``, see the module)."""
        while self._probes:
            family = self._probes.pop(0)
            new = self.levels.copy()
            for i, k in enumerate(KNOBS):
                if k.family == family:
                    new[i] = self.defaults[i]
            if np.array_equal(new, self.levels):
                continue  # already back at default
            why = (
                f"probe: {family} without the rest of the last change, for a canary window; "
                "kept out only if the job is clearly faster"
            )
            reasons = {KNOBS[i].name: why for i in np.flatnonzero(new != self.levels)}
            before, steady = self._baseline()
            self.canary = _Canary(
                self.t, self.levels.copy(), new.copy(), before, probe=True, steady=steady
            )
            self.last_change[new != self.levels] = self.t
            self.levels = new
            return Verdict(self.levels.copy(), reasons, event="probe")
        return None

    def _restart(self, rate: float, source: str) -> Verdict:
        unit = {"client": "the job's own sample count", "proxy": "the trainer's CPU time"}
        now = f"progress now measured by {unit.get(source, source)}"
        base = self._keepable()
        if base is not None:
            return self._keep(rate, f"{now}: default knobs", base)
        why = f"{now}: default knobs, warm-up again"
        reasons = {k.name: why for i, k in enumerate(KNOBS) if self.levels[i] != self.defaults[i]}
        self._new_unit(rate)
        self.warmup_rates.append(rate)
        return Verdict(self.levels.copy(), reasons, event="restart")

    def _new_unit(self, rate: float) -> None:
        """Default knobs and a new warm-up (:meth:`_reset`) from ``rate``, the new unit's first,
        on a clock started again; held-off settings stay held."""
        # Held-off levels keep their absolute "refused until": the clock restarts, so shift them.
        self.held = {key: until - self.t for key, until in self.held.items() if until > self.t}
        self.vetted.clear()  # judged in another unit, against another reference
        self._reset()
        self.t = 1
        self.rates.append(rate)

    def seed(self, rates: list[float], source: str) -> None:
        """Feed rates measured at default knobs before the first :meth:`step` (the warm-up's
        first intervals, the proxy from ``/proc`` while the telemetry compiled), in ``source``'s
        unit; the policy's first wish then meets a warm-up that may have ended."""
        for rate in rates:
            self.step(rate, self.levels.copy(), source)

    def start_at(self, levels: Levels) -> None:
        """Begin at ``levels`` instead of the default knobs: the weights a job was started
        with (``guard_start_weight``), set before the first :meth:`step`. As after a restart
        that kept the weights (:meth:`_keep`), the whole warm-up is owed (at default knobs
        after ``fallback_window`` intervals off them; none for a job that ends first), and no
        knob moves away from them until a canary window of rates is there to judge the change
        by (a move back toward default goes in at once with ``fast_retreat``)."""
        self.levels = np.asarray(levels, dtype=np.int64).copy()
        if not np.array_equal(self.levels, self.defaults):
            self._owe_warmup()

    def _owe_warmup(self) -> None:
        """Tuned from now, the whole warm-up owed (:meth:`_begin_reference`), and no knob
        moving until a canary window of rates is there to judge the next change by."""
        self._warm = True
        self.owed = self.cfg.warmup
        self.last_change[:] = self.t + self.cfg.canary - self.cfg.dwell

    def _keepable(self) -> Levels | None:
        """The setting whose weights a change of unit may keep (``keep_on_restart``), or None:
        the one in effect if no change is being judged or the one being judged has not seen a
        fall in the two or more intervals it had (a job's start-up is often shorter than a
        canary window); otherwise the one before that change (it was the baseline; the change
        is dropped unjudged). None when that setting's weights are the defaults, or while a
        warm-up or fallback runs."""
        if not (
            self.cfg.keep_on_restart
            and self._warm
            and self._resume is None
            and self.t >= self.fallback_until
        ):
            return None
        c = self.canary
        base = self.levels if c is None or self._canary_so_far() else c.before
        if not any(
            k.family == Family.WEIGHTS and base[i] != self.defaults[i] for i, k in enumerate(KNOBS)
        ):
            return None
        return base

    def _canary_so_far(self) -> bool:
        """No change being judged, or the one being judged not worse so far (two intervals at
        least after it; a family probe never: its canary looks for a gain)."""
        c = self.canary
        if c is None:
            return True
        n = self.t - c.start
        if c.probe or n < 2:
            return False
        return not worse(c.baseline, list(self.rates)[-n:], self.cfg.threshold)

    def _keep(self, rate: float, why: str, base: Levels) -> Verdict:
        """A new unit, the weights of ``base`` (:meth:`_keepable`) kept and the other families
        back to default: the new unit's whole warm-up is owed (at default knobs after
        ``fallback_window`` tuned intervals; none for a job that ends first), and no knob moves
        until a canary window of the new unit's rates is there to judge it by."""
        kept = np.where([k.family == Family.WEIGHTS for k in KNOBS], base, self.defaults)
        stay = (
            "the weights stay"
            if np.array_equal(base, self.levels)
            else "the weights from before the change being judged stay"
        )
        reasons = {KNOBS[i].name: f"{why}; {stay}" for i in np.flatnonzero(kept != self.levels)}
        self._new_unit(rate)
        self.levels = kept
        self._owe_warmup()
        self.tuned_rates.append(rate)
        return Verdict(self.levels.copy(), reasons, event="restart")

    def _begin_reference(self) -> Verdict:
        """The deferred part of the warm-up begins: default knobs for the intervals owed."""
        self._resume = self.levels.copy()
        self._reference_left = self.owed + 1  # the first interval mixes both settings
        why = (
            f"the rest of the warm-up: the default rate is not yet known within "
            f"{self.cfg.fallback_margin:.0%}; default knobs for {self.owed} intervals, then back"
        )
        reasons = {k.name: why for i, k in enumerate(KNOBS) if self.levels[i] != self.defaults[i]}
        self.levels = self.defaults.copy()
        return Verdict(self.levels.copy(), reasons, event="reference")

    def _reference_interval(self, rate: float) -> Verdict:
        """One interval of the deferred warm-up; the tuned setting comes back at its end."""
        assert self._resume is not None
        if self._reference_left <= self.owed:  # not the first, mixed one
            self.warmup_rates.append(rate)
        self._reference_left -= 1
        if self._reference_left > 0 and not (self._reference_left <= self.owed and self._precise()):
            return Verdict(self.levels.copy(), event="reference")
        self.owed = 0
        self._reference_left = 0
        back, self._resume = self._resume, None
        why = f"back to the tuned setting (default rate {self.reference_rate:,.1f}/s)"
        reasons = {k.name: why for i, k in enumerate(KNOBS) if back[i] != self.levels[i]}
        self.levels = back.copy()
        self.last_change[:] = self.t  # dwell before the next change: its canary's baseline
        return Verdict(self.levels.copy(), reasons, event="resume")

    def _in_startup_hold(self, t: int) -> bool:
        """Whether only the weights may move at interval ``t`` (``startup_hold``): the job's
        progress is still the start-up proxy and the hold has not passed."""
        return self.source == PROGRESS_PROXY and t <= self.cfg.startup_hold

    def _uncontended(self) -> str:
        """Why weights may not rise above default now ("" when they may)."""
        if not self.contention:
            return ""
        share, mbps = fmean(self.contention), fmean(self.reading)
        if share >= self.cfg.min_contention or mbps < self.cfg.io_mbps:
            return ""
        return (
            f"no contention: other tasks want {share:.0%} of the CPUs (under "
            f"{self.cfg.min_contention:.0%}) while the job reads {mbps:.0f} MB/s; a heavier job "
            "would only crowd out the kernel's work for its reads"
        )

    def idle(self) -> bool:
        """Whether the next :meth:`step` may take a wish: warmed up (the deferred part of the
        warm-up not running), no change being judged, no fallback being held (the online
        adapter explores only then)."""
        return (
            self._warm
            and self._resume is None
            and self.canary is None
            and self.t + 1 >= self.fallback_until
        )

    def refuses(self, i: int, level: int, wish: int | None = None) -> str:
        """Why the next :meth:`step` would not move knob ``i`` one rung to ``level`` for a wish
        of ``wish`` (default: ``level``); "" when it would."""
        return self._refusal(i, level, level if wish is None else wish, self.t + 1)

    def _refusal(self, i: int, level: int, wish: int, t: int) -> str:
        if KNOBS[i].family != "weights" and self._in_startup_hold(t):
            return "start-up: only the weights move until the job reports its own progress"
        if KNOBS[i].family == "weights" and wish > self.defaults[i] and level >= self.levels[i]:
            quiet = self._uncontended()
            if quiet:
                return quiet
        if t - self.last_change[i] < self.cfg.dwell:
            return "dwell"
        until = self.held.get((i, level))
        if until is not None and t < until:
            return "held off after a rollback"
        return ""

    def _knob_order(self) -> list[int]:
        """The knobs in the order their changes are considered: the table's, or with
        ``one_family`` the families after the one changed last first (round robin: a policy
        that keeps retuning its weights does not keep the other families waiting)."""
        if not self.cfg.one_family:
            return list(range(len(KNOBS)))
        families = list(dict.fromkeys(k.family for k in KNOBS))
        if self._last_family in families:
            p = families.index(self._last_family) + 1
            families = families[p:] + families[:p]
        return [i for f in families for i, k in enumerate(KNOBS) if k.family == f]

    def _limit(self, wish: Levels) -> Verdict:
        new = self.levels.copy()
        reasons: dict[str, str] = {}
        quiet = self._uncontended()
        wish = wish.copy()
        family = None  # the family this change moves (one_family)
        for i in self._knob_order():
            k = KNOBS[i]
            if family is not None and k.family != family:
                continue
            why = "policy"
            if quiet and k.family == "weights" and wish[i] > self.defaults[i]:
                wish[i] = self.defaults[i]
                why = quiet
            if wish[i] == self.levels[i]:
                continue
            gap = int(wish[i] - self.levels[i])
            level = int(self.levels[i] + int(np.sign(gap)) * min(abs(gap), self.cfg.max_rungs))
            if self._refusal(i, level, int(wish[i]), self.t):
                continue
            new[i] = level
            self.last_change[i] = self.t
            reasons[k.name] = why
            if self.cfg.one_family:
                family = self._last_family = k.family
        if reasons:
            before, steady = self._baseline()
            self.canary = _Canary(self.t, self.levels.copy(), new.copy(), before, steady=steady)
            self.levels = new
        return Verdict(self.levels.copy(), reasons)

    def _early_fall(self, c: _Canary) -> bool:
        """Whether the change being judged has already cost ``early_fall`` of the rate, clear of
        the noise, in half its canary window (two intervals at least): a setting that costs a
        job half its rate or more (tinylm's trainer put on one CPU: 69 %, 2026-12-06) need not
        run the whole window. The first interval mixes both settings, so the fall seen is less
        than the setting's own."""
        n = self.t - c.start
        early = max(2, math.ceil(self.cfg.canary / 2))
        if c.probe or self.cfg.early_fall <= 0 or not early <= n < self.cfg.canary:
            return False
        return worse(c.baseline, list(self.rates)[-n:], self.cfg.early_fall)

    def _judge_canary(self) -> Verdict | None:
        c = self.canary
        if c is None:
            return None
        n = self.t - c.start
        early = n < self.cfg.canary
        if early and not self._early_fall(c):
            return None
        self.canary = None
        after = list(self.rates)[-min(n, self.cfg.canary) :]
        moved = [i for i in range(len(KNOBS)) if c.after[i] != c.before[i]]
        if c.probe:
            return self._judge_probe(c, after, moved)
        if early or worse(c.baseline, after, self.cfg.threshold):
            drop = 1.0 - fmean(after) / max(fmean(c.baseline), 1e-12)
            when = f" (early: {n} of the canary's {self.cfg.canary} intervals)" if early else ""
            why = f"rollback: progress fell {drop:.0%} after the change{when}"
            reasons = {}
            for i in moved:
                self.held[(i, int(c.after[i]))] = self.t + self.cfg.holdoff
                self.vetted.discard((i, int(c.after[i])))
                self.last_change[i] = self.t
                reasons[KNOBS[i].name] = why
            self.levels = c.before.copy()
            if c.steady:  # the setting back in effect: the rates the change was judged against
                self._steady_for = c.before.copy()
                self._steady = deque(c.baseline, maxlen=self.cfg.canary)
            return Verdict(self.levels.copy(), reasons, event="rollback")
        self.vetted.update((i, int(c.after[i])) for i in moved)
        if self.cfg.probe_families:
            families = list(dict.fromkeys(KNOBS[i].family for i in moved))
            if len(families) > 1:
                self._probes = [f for f in families if f != Family.WEIGHTS]
        return None

    def _judge_probe(self, c: _Canary, after: list[float], moved: list[int]) -> Verdict | None:
        """A family taken out: kept out only if the job is clearly faster without it (by more
        than the threshold and the noise, the canary's test the other way round), its setting
        held off; otherwise it comes back. A family is not asked to prove its gain, which the
        noise of a short window would often hide: only a clear loser goes."""
        if worse(after, c.baseline, self.cfg.threshold):
            for i in moved:
                self.held[(i, int(c.before[i]))] = self.t + self.cfg.holdoff
            return None
        change = fmean(after) / max(fmean(c.baseline), 1e-12) - 1.0
        why = f"probe: {change:+.0%} without it, no clear gain; back"
        reasons = {}
        for i in moved:
            self.last_change[i] = self.t
            reasons[KNOBS[i].name] = why
        self.levels = c.before.copy()
        return Verdict(self.levels.copy(), reasons, event="probe")

    def _check_fallback(self) -> Verdict | None:
        ref = self.reference_rate
        n = self.cfg.fallback_window
        early = max(len(self.warmup_rates), self.cfg.canary, 2)
        if ref <= 0 or len(self.tuned_rates) < early or np.array_equal(self.levels, self.defaults):
            return None
        tuned = fmean(self.tuned_rates)
        if tuned >= (1.0 - self.cfg.fallback_margin) * ref:
            return None
        if len(self.tuned_rates) < n and (
            self.canary is not None
            or not worse(self.warmup_rates, list(self.tuned_rates), self.cfg.fallback_margin)
        ):
            # Not the whole window yet, and within the noise, or a change is being judged: its
            # canary undoes that change alone (a short warm-up would otherwise let the early
            # fallback preempt it, and put every knob back).
            return None
        why = f"fallback to default: tuned progress {tuned / ref - 1:+.0%} against default"
        reasons = {k.name: why for i, k in enumerate(KNOBS) if self.levels[i] != self.defaults[i]}
        self.levels = self.defaults.copy()
        self.canary = None
        self.vetted.clear()
        self.tuned_rates.clear()
        self.fallback_until = self.t + n
        self.last_change[:] = self.t
        return Verdict(self.levels.copy(), reasons, event="fallback")


def worse(before: list[float], after: list[float], threshold: float) -> bool:
    """Whether ``after`` is worse than ``before`` by more than ``threshold`` and the noise.

    Noise-aware: the fall must also exceed twice the standard error of the difference of the
    two windows' means.
    """
    if not before or not after:
        return False
    b, a = fmean(before), fmean(after)
    if b <= 0 or a >= b * (1.0 - threshold):
        return False
    var = 0.0
    if len(before) > 1:
        var += variance(before) / len(before)
    if len(after) > 1:
        var += variance(after) / len(after)
    return (b - a) > 2.0 * math.sqrt(var)
