"""The online control loop: one pass per interval, guarded, logged, tracked.

Each interval: read telemetry → features → policy (numpy weights) → guard → actuators → decision
log → MLflow metrics. Every ``follow_s`` (:data:`FOLLOW_S` unless told), and at the next pass
whenever the telemetry shows the job's processes changed, the job's processes and threads are
listed again, new ones put under their role's settings, knobs changed behind the tuner's back
given up, and the knobs in effect read back (they are also read back after each change): that
bookkeeping is most of a pass's system calls, and at every 250 ms interval it kept the tuner
above 2 % of a core on a busy node. A new thread needs no follow: it inherits its creator's
cgroup and CPUs, and so its role's settings; a new process may change role (a loader forked by
the trainer), and shows in the telemetry's process list.

The loop's own CPU use (per phase) and latency are measured and logged. It ends when the job
ends, on SIGINT/SIGTERM (the actuators restore on the way out), or when the watchdog sees
telemetry stop. :meth:`TuneLoop.run` paces the intervals itself; the node service steps many
loops in one wake instead (:meth:`TuneLoop.step`, :mod:`autotune.service.ticker`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from autotune.actuators import Actuators
from autotune.daemon.adapt import AdaptConfig, Adapter
from autotune.daemon.explain import explain
from autotune.daemon.guard import Guard, GuardConfig, Verdict, half_width95
from autotune.features import featurize, progress_rate
from autotune.knobs import KNOBS, default_values
from autotune.knobs.levels import levels_to_values, values_to_levels
from autotune.policy import Policy
from autotune.roles import ROLE_INDEX, Role
from autotune.system.footprint import status_kb
from autotune.system.hugepages import collapse_heap
from autotune.telemetry.collector import TelemetryCollector
from autotune.telemetry.sample import PROGRESS_PROXY, B, C, Sample

log = logging.getLogger("autotune.daemon")
# Intervals in a row with no CPU time seen in any role before the watchdog calls telemetry dead.
WATCHDOG_INTERVALS = 8
# How often the job is listed again, followed (new threads, yielded knobs) and its knobs read back.
FOLLOW_S = 1.0
TABLE_DEFAULTS = default_values()


@dataclass
class Tick:
    """What one interval saw and did (for the live view and tracking)."""

    t: float
    rate: float
    reference: float
    knobs: dict[str, float]
    verdict: Verdict
    loop_ms: float
    cpu_percent: float
    adapt: str = ""  # the online adapter's state, when on (autotune/daemon/adapt.py)
    adapt_metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Summary:
    """The session in figures."""

    intervals: int = 0
    reference_rate: float = 0.0
    mean_rate: float = 0.0
    # The tuned intervals' mean rate over the warm-up's (the same job at default knobs in its
    # first seconds, not a default run): a job that speeds up or slows down by itself moves it.
    # None when no warm-up rate was measured in the unit the session ended in (a job that
    # ended before the warm-up it owed, guard.py's keep_on_restart); the interval's upper
    # end is inf when the warm-up's rates do not bound its mean away from 0.
    progress_vs_warmup: float | None = 1.0
    progress_vs_warmup_ci95: tuple[float, float] | None = (1.0, 1.0)
    changes: int = 0
    rollbacks: int = 0
    fallbacks: int = 0
    time_at: dict[str, float] = field(default_factory=dict)  # setting → seconds
    loop_cpu_percent: float = 0.0
    loop_ms_p99: float = 0.0
    phase_cpu_ms: dict[str, float] = field(default_factory=dict)  # phase → CPU ms per interval
    rss_mb: float = 0.0
    hugepage_mb: int = 0  # the tuner's heap collapsed into huge pages (a long session)
    ended_by: str = ""
    adapt: dict[str, object] = field(default_factory=dict)  # settings tried, estimates, moves


class TuneLoop:
    """Runs a policy against a job until the job, a signal or the watchdog ends it."""

    def __init__(
        self,
        policy: Policy,
        collector: TelemetryCollector,
        act: Actuators,
        interval_s: float,
        *,
        guard: GuardConfig | None = None,
        on_tick: Callable[[Tick], None] | None = None,
        adapt: AdaptConfig | None = None,
        hugepages_after_s: float | None = None,
        follow_s: float = FOLLOW_S,
        warmup_rates: list[float] | None = None,
        start: dict[str, float] | None = None,
    ) -> None:
        self.policy = policy
        self.hugepages_after_s = hugepages_after_s
        self.col = collector
        self.act = act
        self.interval_s = interval_s
        self.defaults = {**TABLE_DEFAULTS, **act.defaults()}
        self.guard = Guard(
            values_to_levels(self.defaults), guard or GuardConfig.for_interval(interval_s)
        )
        # Knobs set before the loop, from the job's first instruction (guard_start_weight):
        # the guard begins there, its warm-up owed.
        if start:
            self.guard.start_at(values_to_levels({**self.defaults, **start}))
        # Proxy rates measured before the telemetry was up (StartupProxy): the warm-up's first
        # intervals, or (from a start off default) the first tuned ones.
        self.guard.seed(warmup_rates or [], PROGRESS_PROXY)
        self.on_tick = on_tick
        self.adapt = Adapter(adapt) if adapt is not None else None
        self.summary = Summary()
        self._quiet = 0
        self._stop = False
        self._wake = threading.Event()  # ends an interval's wait early: a stop, the job's end
        self._rates: list[float] = []
        self._loop_ms: list[float] = []
        self._time_at: dict[str, float] = {}
        self._phases = Phases()
        self.follow_every = max(1, round(follow_s / interval_s))
        self._processes: frozenset[int] | None = None  # the job's processes at the last pass
        self._knobs: dict[str, float] = {}
        # Knobs a change would act on nothing for (no block device read yet, no job process on
        # the progress channel): held where they are, as of the last follow.
        self._inert: dict[str, str] = {}
        self._since_follow = self.follow_every  # the first pass follows
        self._cpu0 = self._wall0 = 0.0

    def stop(self) -> None:
        """Ask the loop to end after the current interval."""
        self._stop = True
        self._wake.set()

    def wake(self) -> None:
        """End the current interval's wait now (the job has ended, say: a pass sees it at once
        instead of up to an interval later). Safe from another thread."""
        self._wake.set()

    def _telemetry_alive(self, s: Sample) -> bool:
        busy = int(s.roles[:, C["oncpu_ns"]].sum())
        self._quiet = 0 if busy > 0 else self._quiet + 1
        return self._quiet < WATCHDOG_INTERVALS

    def _follow(self, ph: Phases) -> None:
        """Every ``follow_every`` passes: list the job, follow it, read the knobs back."""
        self._since_follow += 1
        if self._since_follow < self.follow_every:
            return
        self._since_follow = 0
        members = self.act.target.members()
        ph.mark("members")
        self.act.follow(members)
        self._inert = self.act.inert(members)
        ph.mark("follow")
        self._knobs = {**self.defaults, **self.act.current(members)}
        ph.mark("readback")

    def _apply(self, verdict: Verdict, obs: npt.NDArray[np.float32]) -> None:
        if not verdict.reasons:
            return
        values = levels_to_values(verdict.levels)
        for knob, why in verdict.reasons.items():
            reason = why if why != "policy" else f"policy: {explain(knob, obs)}"
            if knob in self.act.disabled:
                continue
            now = self.act.apply({knob: values[knob]}, reason)  # read back after writing
            if now:
                self._knobs = {**self.defaults, **now}

    def run(self) -> Summary:
        """Loop until the end; returns the session's summary."""
        self.begin()
        next_tick = time.monotonic() + self.interval_s
        ended = "stopped"
        while not self._stop:
            self._wake.wait(max(0.0, next_tick - time.monotonic()))
            self._wake.clear()
            next_tick += self.interval_s
            if next_tick < time.monotonic():  # fell behind (a stall): do not try to catch up
                next_tick = time.monotonic() + self.interval_s
            if self._stop:
                break
            why = self.step()
            if why is not None:
                ended = why
                break
        return self.end(ended)

    def begin(self) -> None:
        """Start the clocks of the summary (:meth:`run` does; a caller that paces the loop
        itself calls :meth:`begin`, then :meth:`step` once per interval, then :meth:`end`)."""
        self._cpu0, self._wall0 = time.process_time(), time.monotonic()

    @property
    def stopping(self) -> bool:
        """:meth:`stop` was called."""
        return self._stop

    def step(self) -> str | None:
        """One interval: sample, decide, apply, record. Returns why the loop ends, or None to go
        on (the caller waits an interval between two calls)."""
        t0, c0 = time.monotonic(), time.process_time()
        ph = self._phases
        ph.start()
        if not self.col.alive():
            return "job ended"
        self._follow(ph)
        s = self.col.sample()
        s.knobs = dict(self._knobs)
        procs = frozenset(self.col.processes_seen)
        if self._processes is not None and procs != self._processes:
            self._since_follow = self.follow_every  # a process came or went: follow next pass
        self._processes = procs
        ph.mark("telemetry")
        if not self._telemetry_alive(s):
            log.warning("autotune: telemetry stopped; restoring the knobs and stopping")
            return "watchdog: telemetry stopped"
        obs = featurize(s)
        rate = progress_rate(s)
        current = values_to_levels(s.knobs)
        wish = hold_inert(self.policy.decide(obs, current), current, self._inert)
        if self.adapt is not None:
            # Never explored: knobs the actuators gave up on, and knobs that act on nothing
            # now (held: an arm on one would never take, and the adapter would wait for it).
            skip = self.act.disabled.keys() | self._inert.keys()
            wish = hold_inert(self.adapt.wish(wish, rate, self.guard, skip), current, self._inert)
        wish = hold_same(wish, self.guard.levels, self.act.same_effect)
        verdict = self.guard.step(rate, wish, s.progress_source, other_demand(s), read_mbps(s))
        if self.adapt is not None:
            verdict = self.adapt.annotate(verdict)
        ph.mark("decide")
        self._apply(verdict, obs)
        ph.mark("apply")
        loop_ms = (time.monotonic() - t0) * 1e3
        cpu = 100.0 * (time.process_time() - c0) / self.interval_s
        self._record(s, rate, verdict, loop_ms)
        if self.on_tick is not None:
            self.on_tick(
                Tick(
                    time.monotonic() - self._wall0,
                    rate,
                    self.guard.reference_rate,
                    s.knobs,
                    verdict,
                    loop_ms,
                    cpu,
                    *((self.adapt.status(), self.adapt.metrics()) if self.adapt else ()),
                )
            )
        ph.mark("track")
        after = self.hugepages_after_s
        if after is not None and time.monotonic() - self._wall0 >= after:
            self.hugepages_after_s = None
            self._collapse_in_background()
        return None

    def end(self, ended: str) -> Summary:
        """Close the summary with why the loop ended; returns it."""
        self._finish(ended, time.process_time() - self._cpu0, time.monotonic() - self._wall0)
        return self.summary

    def _collapse_in_background(self) -> None:
        """The tuner's heap into huge pages (autotune.system.hugepages), from a thread at the
        lowest priority: the loop goes on, and the job never waits for it."""

        def collapse() -> None:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
            self.summary.hugepage_mb = collapse_heap()

        threading.Thread(target=collapse, name="autotune-hugepages", daemon=True).start()

    def _record(self, s: Sample, rate: float, verdict: Verdict, loop_ms: float) -> None:
        self._loop_ms.append(loop_ms)
        if verdict.event == "restart":  # rates so far were in another unit
            self._rates.clear()
        if not self.guard.warming_up:
            self._rates.append(rate)
        setting = " ".join(f"{k}={v:g}" for k, v in sorted(s.knobs.items()))
        self._time_at[setting] = self._time_at.get(setting, 0.0) + s.interval_s
        self.summary.changes += len(verdict.reasons)
        self.summary.rollbacks += verdict.event == "rollback"
        # Count the moves to default, not the intervals held there afterwards.
        self.summary.fallbacks += verdict.event == "fallback" and bool(verdict.reasons)

    def _finish(self, ended: str, cpu_s: float, wall_s: float) -> None:
        s = self.summary
        s.ended_by = ended
        s.intervals = len(self._loop_ms)
        s.reference_rate = self.guard.reference_rate
        s.mean_rate = float(np.mean(self._rates)) if self._rates else 0.0
        if s.reference_rate > 0:
            s.progress_vs_warmup = s.mean_rate / s.reference_rate
            s.progress_vs_warmup_ci95 = ratio_ci95(self._rates, self.guard.warmup_rates)
        else:
            s.progress_vs_warmup = s.progress_vs_warmup_ci95 = None
        s.time_at = dict(sorted(self._time_at.items(), key=lambda kv: -kv[1]))
        s.loop_cpu_percent = 100.0 * cpu_s / max(wall_s, 1e-9)
        s.loop_ms_p99 = float(np.percentile(self._loop_ms, 99)) if self._loop_ms else 0.0
        s.rss_mb = peak_rss_mb()
        s.phase_cpu_ms = self._phases.per_interval_ms()
        s.adapt = self.adapt.summary() if self.adapt is not None else {}


class Phases:
    """The loop thread's CPU time per phase of an interval (``time.thread_time``: this thread
    only, so the progress server's and the uploader's work is not counted in a phase)."""

    def __init__(self) -> None:
        self.cpu_s: dict[str, float] = {}
        self.intervals = 0
        self._last = 0.0

    def start(self) -> None:
        self.intervals += 1
        self._last = time.thread_time()

    def mark(self, phase: str) -> None:
        now = time.thread_time()
        self.cpu_s[phase] = self.cpu_s.get(phase, 0.0) + now - self._last
        self._last = now

    def per_interval_ms(self) -> dict[str, float]:
        n = max(self.intervals, 1)
        return {k: round(1e3 * v / n, 3) for k, v in self.cpu_s.items()}


def hold_inert(
    wish: npt.NDArray[np.int64], current: npt.NDArray[np.int64], inert: dict[str, str]
) -> npt.NDArray[np.int64]:
    """The policy's wish with every inert knob (:meth:`Actuators.inert`) kept at its current
    level: a change nothing can feel would only be logged, written and judged by a canary,
    delaying the changes that act (on a job with no progress client, every prefetch wish)."""
    if not inert:
        return wish
    held = np.array(wish, dtype=np.int64, copy=True)
    for i, knob in enumerate(KNOBS):
        if knob.name in inert:
            held[i] = current[i]
    return held


def hold_same(
    wish: npt.NDArray[np.int64],
    levels: npt.NDArray[np.int64],
    same: Callable[[str, float, float], bool],
) -> npt.NDArray[np.int64]:
    """The policy's wish with every knob whose wished value sets the same thing as the guard's
    level (``same``: :meth:`Actuators.same_effect`) kept at that level. On 2 CPUs a trainer
    share of 0.25 and of 0.5 are both one CPU: the policy moved between them (mixed_io,
    2026-12-07), and each move was a change to the guard, with its dwell and, away from
    default, a canary window that held every other change back, for nothing on the node."""
    held = np.array(wish, dtype=np.int64, copy=True)
    for i, knob in enumerate(KNOBS):
        if held[i] != levels[i] and same(
            knob.name, knob.ladder[int(held[i])], knob.ladder[int(levels[i])]
        ):
            held[i] = levels[i]
    return held


def other_demand(s: Sample) -> float:
    """What other tasks wanted in the interval (on-CPU and run-queue wait), as a share of the
    node's CPUs: the contention a heavier job would win CPU from."""
    row = s.roles[ROLE_INDEX[Role.OTHER]]
    want_s = (int(row[C["oncpu_ns"]]) + int(row[C["runq_wait_ns"]])) / 1e9
    return want_s / max(s.interval_s * s.ncpus, 1e-9)


def read_mbps(s: Sample) -> float:
    """What the job's devices read in the interval, MB/s."""
    return float(s.block[B["read_bytes"]]) / 1e6 / max(s.interval_s, 1e-9)


def ratio_ci95(num: list[float], den: list[float], resamples: int = 2000) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of mean(num) / mean(den), each resampled on its own
    (numpy, seeded: scipy's import would lengthen the tuner's exit). (1, 1) when either side
    has under two intervals or ``den`` averages 0. The upper end is inf when the 95 % interval
    of mean(den) (Student's t) reaches 0: a ratio over a mean that may be 0 has no upper bound,
    and resamples of a warm-up taken while the job started (rates 64, 0, 0, 320) put it at
    1e14."""
    a, b = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    if len(a) < 2 or len(b) < 2 or b.mean() <= 0:
        return (1.0, 1.0)
    unbounded = b.mean() - half_width95(den) <= 0
    rng = np.random.default_rng(0)
    top = a[rng.integers(0, len(a), (resamples, len(a)))].mean(axis=1)
    bottom = b[rng.integers(0, len(b), (resamples, len(b)))].mean(axis=1)
    ratios = top / np.maximum(bottom, 1e-12)
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    return (round(float(lo), 4), math.inf if unbounded else round(float(hi), 4))


def peak_rss_mb() -> float:
    """This process's peak resident memory, in MB (``VmHWM``).

    Not ``ru_maxrss``: Linux carries that across fork and exec, so a tuner started by a large
    parent (a harness holding a data set, say) would report the parent's peak as its own.
    """
    kb = status_kb("VmHWM")
    return (kb or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024.0


def write_summary(summary: Summary, path: Path) -> Path:
    path.write_text(json.dumps(summary.__dict__, indent=1, default=str) + "\n")
    return path
