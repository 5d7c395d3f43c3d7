"""ReplayEnv: recorded workloads, answered by a calibrated model of the node."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt

from autotune.envs import spaces, splits
from autotune.envs.model import Demand, Knobs, Params, Response, cores_for, respond
from autotune.envs.workload import Workload, load
from autotune.errors import UserError
from autotune.features import N_FEATURES
from autotune.features.schema import featurize_parts, p50_p99
from autotune.knobs import KNOBS
from autotune.roles import ROLE_INDEX, Role
from autotune.telemetry.sample import N_SLOTS, PROGRESS_CLIENT, B, C

# Reward cost per knob changed in a step, in units of progress relative to default: a change
# must buy at least 1% more progress to pay for itself (changes disturb a running job).
CHANGE_COST = 0.01
# The reward's cost per knob held off its default, per step. The replay answers a setting the
# recording never ran by extrapolating; where it calls a knob's effect nil, the real machine often
# charges a few per cent for moving it (cnn's grid: prefetch 8 at 0.96, read-ahead 4 MiB at 0.96 of
# default), so a knob moved for no modelled gain is a bet against the node. PPO seed 0 trained at
# 0.02 ran cnn 1.29x [1.21, 1.36] as fast as the same seed at 0 (bench/online, 5 rotated repeats,
# bench/results/online_off_default.json), shards 1.06x, randread 1.04x, cnn_noisy and tinylm
# within their intervals.
OFF_DEFAULT_COST = 0.02
DEFAULT_EPISODE_STEPS = 240  # one minute at the 250 ms default interval
_T, _L, _O = ROLE_INDEX[Role.TRAINER], ROLE_INDEX[Role.LOADER], ROLE_INDEX[Role.OTHER]
_EPS = 0.05
_SHAPE = (len(KNOBS),)
_ONCPU, _WAIT, _NVCSW, _NIVCSW = C["oncpu_ns"], C["runq_wait_ns"], C["nvcsw"], C["nivcsw"]
_RA_SYNC, _RA_ASYNC = C["ra_sync"], C["ra_async"]
_IO_COUNTERS = tuple(C[n] for n in ("pgcache_miss", "majflt", "ra_sync_pages", "ra_async_pages"))
_READ_BYTES, _READ_REQS = B["read_bytes"], B["read_reqs"]


@dataclass
class _Row:
    """Per-row values computed once per workload: the demand and the model at two settings."""

    demand: Demand
    recorded: Response
    default: Response
    rate: float  # recorded progress per second
    contention: tuple[float, float, float]  # per role, at the recorded knobs
    readahead_kb: float  # recorded
    client: bool  # the job reported its progress (else the trainer-CPU proxy)
    roles: list[list[float]]  # the recorded counters, as floats to rescale
    runq_q: list[tuple[float, float]]  # recorded run-queue (p50, p99) per role, log2 µs
    block: list[float]
    blk_q: tuple[float, float]  # recorded block latency (p50, p99), log2 µs


def contention(d: Demand, k: Knobs, p: Params, ncpus: int) -> tuple[float, float, float]:
    """How crowded each role's CPUs are, weighted by how little of them it may claim.

    ``max(0, wanted / cores - 1) × (1 - weight share)`` per role: 0 when its CPUs are not
    oversubscribed. The replay scales recorded run-queue waits by its change.
    """
    k_t, k_l = cores_for(k.cpus_trainer, ncpus), cores_for(k.cpus_loader, ncpus)
    w_t, w_l = k.weight_trainer * p.u_trainer, k.weight_loader * p.u_loader
    w_o = max(d.other_cores, 0.0)
    total = w_t + w_l + w_o
    out = []
    for cores, own, weight in ((k_t, d.par_trainer, w_t), (k_l, d.par_loader, w_l)):
        other_here = d.other_cores * cores / ncpus
        job_here = d.par_trainer + d.par_loader if k_t + k_l > ncpus else own
        over = max(0.0, (job_here + other_here) / cores - 1.0)
        out.append(over * (1.0 - weight / total) if total > 0 else 0.0)
    over_node = max(0.0, (d.par_trainer + d.par_loader + d.other_cores) / ncpus - 1.0)
    out.append(over_node * (1.0 - w_o / total) if total > 0 else 0.0)
    return out[0], out[1], out[2]


def param_sets(w: Workload) -> list[Params]:
    """The workload's plausible parameter sets: its best fit with each bootstrap refit's
    values (``bootstrap`` in its calibration file; none when it has none)."""
    out = []
    for values in w.calibration.get("bootstrap") or []:
        out.append(w.params.with_values({k: float(v) for k, v in values.items()}))
    return out


def _clamp_slot(x: float) -> float:
    """A log2-µs quantile kept inside the histogram's span."""
    return min(max(x, 0.0), N_SLOTS - 1e-6)


class ReplayEnv(gym.Env[npt.NDArray[np.float32], npt.NDArray[np.int64]]):
    """Tune knobs against recorded workloads.

    ## Description

    Each episode replays a recorded training job from a random row of its trace. What the job
    *wanted* in each interval (CPU per sample for trainer and loaders, bytes per sample, what
    other tasks wanted) comes from the recording; what it *gets* under the agent's knobs comes
    from a model of the node (:mod:`autotune.envs.model`) calibrated on recordings of the same
    workload. The model answers relative to the recorded setting, so the recorded row anchors
    every answer.

    ## Action Space

    ``MultiDiscrete`` with one ladder index per knob of :data:`autotune.knobs.KNOBS`, in table
    order: ``weight.trainer`` and ``weight.loader`` (6 levels, 0.25× … 8×), ``cpus.trainer`` and
    ``cpus.loader`` (4 levels, 25 % … 100 % of the CPUs), ``readahead`` (11 levels, 16 KiB …
    16 MiB), ``prefetch.loader`` (4 levels, 1 … 8). Wrap with
    :class:`autotune.envs.spaces.DiscreteStep` for DQN or :class:`~autotune.envs.spaces.BoxLevels`
    for SAC/TD3.

    ## Observation Space

    ``Box(0, 1, (N_FEATURES,), float32)``: the observation schema of :mod:`autotune.features`
    (per-role CPU share, demand, run-queue wait and latency, switches, page-cache misses,
    readahead; block throughput and latency; progress; GPU; the knob levels in effect), computed
    from a synthesized telemetry sample exactly as online.

    ## Rewards

    ``rate / rate_default - 1 - change_cost × knobs changed - off_default_cost × knobs off their
    default``: progress relative to what the same interval would have made at the default knobs
    (the machine as it was), minus a cost per knob changed in the step (``change_cost``,
    :data:`CHANGE_COST` by default) and one per knob held away from its default
    (``off_default_cost``, :data:`OFF_DEFAULT_COST`): a policy then moves a knob only for a
    modelled gain larger than that.

    ## Starting State

    The knobs at their defaults, at a random row of a randomly chosen workload (or
    ``options={"workload": name, "start": row}``).

    ## Episode End

    Truncated after ``episode_steps`` steps or at the end of the trace; never terminated.

    ## Arguments

    * ``workloads``: names of bundled workloads or trace paths, or loaded :class:`Workload`
      objects (default: every bundled workload).
    * ``episode_steps``: steps before truncation (default 240: a minute at 250 ms).
    * ``noise``: standard deviation of the multiplicative log-normal noise on progress, of mean
      one so that it moves no setting's expected rate (default: each workload's calibrated
      residual, the sd of the fit's log errors).
    * ``rows``: the part of each trace to replay, as fractions ``(start, end)``: training uses
      ``splits.TRAIN``, validation ``splits.VALIDATION``, the figures ``splits.TEST``
      (:mod:`autotune.envs.splits`; default: all of it).
    * ``randomize``: each episode answers with one of the workload's plausible parameter sets
      (the calibration's bootstrap over its explored settings, ``bootstrap`` in the
      ``.calib.json``) drawn at random, instead of the best fit: a policy then meets the spread
      of nodes the recording cannot tell apart (domain randomization). Default off; a workload
      calibrated without a bootstrap always answers with its best fit.
    * ``change_cost``: the reward's cost per knob changed in a step (default
      :data:`CHANGE_COST`).
    * ``off_default_cost``: the reward's cost per knob away from its default in a step (default
      :data:`OFF_DEFAULT_COST`).
    """

    metadata = {"render_modes": []}  # noqa: RUF012 - Gymnasium's convention

    def __init__(
        self,
        workloads: Sequence[str | Workload] | None = None,
        episode_steps: int = DEFAULT_EPISODE_STEPS,
        noise: float | None = None,
        rows: tuple[float, float] = (0.0, 1.0),
        randomize: bool = False,
        *,
        change_cost: float = CHANGE_COST,
        off_default_cost: float = OFF_DEFAULT_COST,
    ) -> None:
        from autotune.envs.workload import list_bundled

        names: Sequence[str | Workload] = workloads if workloads else list_bundled()
        if not names:
            raise UserError("no workloads to replay (none bundled and none given)")
        if episode_steps < 1:
            raise UserError(f"episode_steps must be at least 1, not {episode_steps}")
        if not 0.0 <= change_cost < 1.0:
            raise UserError(f"change_cost must be in [0, 1), not {change_cost}")
        if not 0.0 <= off_default_cost < 1.0:
            raise UserError(f"off_default_cost must be in [0, 1), not {off_default_cost}")
        self.change_cost = change_cost
        self.off_default_cost = off_default_cost
        self.workloads = [w if isinstance(w, Workload) else load(w) for w in names]
        for w in self.workloads:
            if len(w) < 2:
                raise UserError(f"{w.path}: a trace needs at least 2 rows to replay")
        if not 0.0 <= rows[0] < rows[1] <= 1.0:
            raise UserError(f"rows must be fractions 0 <= start < end <= 1, not {rows}")
        self.episode_steps = episode_steps
        self.rows = rows
        self._noise_override = noise
        self.randomize = randomize
        self.action_space = spaces.multidiscrete()
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(N_FEATURES,), dtype=np.float32)
        self._rows = [self._prepare(w) for w in self.workloads]
        self._sets = [param_sets(w) if randomize else [] for w in self.workloads]
        self._params = self.workloads[0].params  # this episode's parameters
        self._cur = self._rows[0]  # this episode's per-row values
        self._wl = 0
        self._row = 0
        self._steps = 0
        self._levels = np.zeros(len(KNOBS), dtype=np.int64)
        self._default_levels = self._levels.copy()
        self._obs = np.zeros(N_FEATURES, dtype=np.float32)

    # --- per-workload precomputation -----------------------------------------------------

    def _prepare(self, w: Workload, which: int = -1, params: Params | None = None) -> list[_Row]:
        """Per-row values for ``w`` under its best fit (``which`` -1) or its bootstrap set
        ``which`` (``params``), computed once per workload object (read-only after)."""
        key = ("rows", id(w.params))  # new parameters, new rows
        if key not in w.replay_cache:
            w.replay_cache.clear()
            w.replay_cache[key] = self._compute_rows(w, w.params)
        if which < 0 or params is None:
            rows: list[_Row] = w.replay_cache[key]
            return rows
        set_key = ("rows", id(w.params), which)
        if set_key not in w.replay_cache:
            w.replay_cache[set_key] = self._compute_rows(w, params)
        rows = w.replay_cache[set_key]
        return rows

    def _compute_rows(self, w: Workload, params: Params) -> list[_Row]:
        defaults = Knobs.from_values(w.defaults)
        rows = []
        for i, d in enumerate(w.demands_cached()):
            rec = Knobs.from_values({**w.defaults, **w.knobs[i]})
            s = w.samples[i]
            rows.append(
                _Row(
                    demand=d,
                    recorded=respond(d, rec, params, w.ncpus),
                    default=respond(d, defaults, params, w.ncpus),
                    rate=float(w.rate[i]),
                    contention=contention(d, rec, params, w.ncpus),
                    readahead_kb=rec.readahead_kb,
                    client=s.progress_source == PROGRESS_CLIENT,
                    roles=s.roles.astype(np.float64).tolist(),
                    runq_q=[p50_p99(h) for h in s.runq_hist.tolist()],
                    block=s.block.astype(np.float64).tolist(),
                    blk_q=p50_p99(s.block_lat_hist.tolist()),
                )
            )
        return rows

    def _noise(self, w: Workload) -> float:
        if self._noise_override is not None:
            return self._noise_override
        return float(w.calibration.get("residual_sd", 0.05))

    # --- the model's answer as telemetry -------------------------------------------------

    def _observe_parts(
        self,
        *,
        w: Workload,
        r: _Row,
        i: int,
        k: Knobs,
        resp: Response,
        rate: float,
        values: dict[str, float],
    ) -> None:
        """Write into ``self._obs`` the observation the model's answer would have produced:
        the recorded row's telemetry, rescaled, through the one feature schema."""
        rec_s = w.samples[i]
        rec = r.recorded
        roles = [row[:] for row in r.roles]
        for idx, new, old in (
            (_T, resp.x_trainer, rec.x_trainer),
            (_L, resp.x_loader, rec.x_loader),
            (_O, resp.x_other, rec.x_other),
        ):
            if old > 0:
                roles[idx][_ONCPU] *= new / old
        cont = contention(r.demand, k, self._params, w.ncpus)
        # Run-queue latency scales with the wait: its log2 quantiles move by log2 of the change.
        runq_q = []
        for idx in (_T, _L, _O):
            g = (cont[idx] + _EPS) / (r.contention[idx] + _EPS)
            roles[idx][_WAIT] *= g
            roles[idx][_NIVCSW] *= g
            q50, q99 = r.runq_q[idx]
            if q99 > 0.0 and g != 1.0:
                s = math.log2(g)
                q50, q99 = _clamp_slot(q50 + s), _clamp_slot(q99 + s)
            runq_q.append((q50, q99))
        rate_ratio = rate / r.rate if r.rate > 0 else 0.0
        io = 0.0
        if rec.bytes_per_sample > 0 and r.rate > 0:
            io = rate * resp.bytes_per_sample / (r.rate * rec.bytes_per_sample)
        events = io * r.readahead_kb / max(k.readahead_kb, 1.0)
        for idx in (_T, _L):
            row = roles[idx]
            row[_NVCSW] *= rate_ratio
            for c in _IO_COUNTERS:
                row[c] *= io
            row[_RA_SYNC] *= events
            row[_RA_ASYNC] *= events
        block = r.block[:]
        block[_READ_BYTES] *= io
        req_ratio = io * rec.request_bytes / resp.request_bytes if resp.request_bytes > 0 else 0.0
        block[_READ_REQS] *= req_ratio
        # Block latency quantiles move by log2 of the request latency's change.
        blk_q = r.blk_q
        if rec.latency_s > 0 and resp.latency_s != rec.latency_s and blk_q[1] > 0.0:
            s = math.log2(resp.latency_s / rec.latency_s)
            blk_q = (_clamp_slot(blk_q[0] + s), _clamp_slot(blk_q[1] + s))
        dt = rec_s.interval_s
        featurize_parts(
            roles=roles,
            runq_quantiles=runq_q,
            block=block,
            block_quantiles=blk_q,
            interval_s=dt,
            ncpus=rec_s.ncpus,
            # The job's samples, or for a job that does not report the proxy (trainer
            # CPU-seconds) exactly as the live collector fills it.
            progress=rate * dt,
            progress_client=r.client,
            gpu=(rec_s.gpu_util, rec_s.gpu_mem) if rec_s.gpu_present else None,
            bpf=rec_s.source == "bpf",
            knobs=values,
            out=self._obs,
        )

    def _observe(self, values: dict[str, float]) -> tuple[npt.NDArray[np.float32], float, float]:
        w = self.workloads[self._wl]
        r = self._cur[self._row]
        k = Knobs.from_values(values)
        resp = respond(r.demand, k, self._params, w.ncpus)
        if r.recorded.rate > 0:
            scale = r.rate / r.recorded.rate
            rate, rate_default = resp.rate * scale, r.default.rate * scale
        else:
            rate, rate_default = r.rate, r.rate
        sd = self._noise(w)
        if sd > 0 and rate > 0:
            # Mean one: exp(N(mu, sd)) averages exp(mu + sd**2 / 2), so mu = -sd**2 / 2 keeps the
            # expected rate the model's. With mu = 0 the default knobs scored 1.06x default on
            # cnn_noisy (sd 0.43) and a constant outscored the noiseless per-row oracle.
            rate *= math.exp(self.np_random.normal(-0.5 * sd * sd, sd))
        self._observe_parts(w=w, r=r, i=self._row, k=k, resp=resp, rate=rate, values=values)
        return self._obs.copy(), rate, rate_default

    # --- Gymnasium API -------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
        super().reset(seed=seed)
        opts = options or {}
        self._wl = self._pick_workload(opts.get("workload"))
        lo, hi = self._bounds(self._wl)
        last_start = max(lo, hi - 1 - self.episode_steps)
        start = opts.get("start")
        if start is None:
            start = int(self.np_random.integers(lo, last_start + 1))
        elif not lo <= int(start) < hi - 1:
            name = self.workloads[self._wl].name
            raise UserError(f"start row {start} is outside {lo}..{hi - 2} of {name}")
        self._row = int(start)
        self._steps = 0
        w = self.workloads[self._wl]
        sets = self._sets[self._wl]
        if sets:
            j = int(self.np_random.integers(0, len(sets)))
            self._params = sets[j]
            self._cur = self._prepare(w, j, sets[j])
        else:
            self._params = w.params
            self._cur = self._rows[self._wl]
        self._levels = spaces.values_to_levels(w.defaults)
        self._default_levels = self._levels.copy()
        values = spaces.levels_to_values(self._levels)
        obs, rate, rate_default = self._observe(values)
        return obs, self._info(values, rate, rate_default, 0)

    def _bounds(self, wl: int) -> tuple[int, int]:
        """The rows ``[lo, hi)`` of workload ``wl`` this env replays (at least two)."""
        return splits.bounds(len(self.workloads[wl]), self.rows)

    def _pick_workload(self, which: Any) -> int:
        if which is None:
            return int(self.np_random.integers(0, len(self.workloads)))
        if isinstance(which, int | np.integer):
            if not 0 <= int(which) < len(self.workloads):
                raise UserError(f"workload index {which} is outside 0..{len(self.workloads) - 1}")
            return int(which)
        for i, w in enumerate(self.workloads):
            if which in (w.name, str(w.path)):
                return i
        raise UserError(
            f"no workload {which!r} in this env; it has {', '.join(w.name for w in self.workloads)}"
        )

    def step(
        self, action: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        levels = np.asarray(action, dtype=np.int64)
        # Gymnasium's own contains() costs a sixth of a step here; this is the same check.
        lv = levels.tolist() if levels.shape == _SHAPE else None
        if lv is None or not all(0 <= a < n for a, n in zip(lv, spaces.LEVELS, strict=True)):
            raise gym.error.InvalidAction(f"{action!r} is not in {self.action_space}")
        changed = int((levels != self._levels).sum())
        self._levels = levels.copy()
        self._row += 1
        self._steps += 1
        values = spaces.levels_to_values(levels)
        obs, rate, rate_default = self._observe(values)
        cost = self.change_cost * changed
        if self.off_default_cost:
            cost += self.off_default_cost * int((levels != self._default_levels).sum())
        reward = rate / rate_default - 1.0 - cost if rate_default > 0 else -cost
        truncated = self._steps >= self.episode_steps or self._row >= self._bounds(self._wl)[1] - 1
        return obs, float(reward), False, truncated, self._info(values, rate, rate_default, changed)

    def _info(
        self, values: dict[str, float], rate: float, rate_default: float, changed: int
    ) -> dict[str, Any]:
        return {
            "workload": self.workloads[self._wl].name,
            "row": self._row,
            "levels": self._levels.copy(),
            "knobs": values,
            "rate": rate,
            "rate_default": rate_default,
            "changes": changed,
        }
