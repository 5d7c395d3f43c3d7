"""The response model behind ReplayEnv: what a recorded demand gets under other knob settings.

A trace records, per interval, what each role *wanted* and what it *got* under the knobs in
effect. The replay env keeps the wants (:class:`Demand`, invariant under the knobs) and asks this
model what the job would get under the agent's knobs. It answers with a throughput ``P``
(samples/s), the CPU each role receives, and the I/O the job causes.

**CPU** (weighted fair share, closed form). The node has ``C`` cores. The trainer needs
``a_t`` CPU-seconds per sample, the loaders ``a_l``; other tasks want ``d_o`` cores. Each role's
weight is ``W_r = multiplier × u_r`` where ``u_r`` (calibrated) is what the role weighs at the
default setting, in units of one nice-0 task; other tasks weigh one unit per core they want.
Affinity confines the trainer to the lowest ``k_t`` cores and the loaders to the highest
``k_l``; together they may use ``U = min(C, k_t + k_l)`` cores, where other tasks want
``d_o' = d_o - (C - U)`` of them. Weighted max-min fairness with the water level set by the job
role most short of weight, ``m = max(a_r / W_r)``, gives the largest ``P`` with
``P·Σa + min(d_o', P·m·d_o') = U``: either other tasks get all they want,
``P = (U - d_o') / Σa``, or they are held to their share, ``P = U / (Σa + m·d_o')``. Each role is
also capped by its cores and its own parallelism (``T_r`` threads' worth).

**I/O** (a roofline over latency and bandwidth). A sample reads ``b(R) = b₀·(R/R₀)^k`` bytes at
read-ahead ``R``, anchored at what it read at the recorded ``R₀``: ``k`` is near 1 when access is
random through a memory map (every fault reads around ``R``, wasting most of it) and 0 for
sequential streams (read-ahead only reads earlier what would be read anyway). Requests carry
``s(R) = min(R, s_max)`` bytes and cost ``L0 + s/B``; with ``q`` streams in flight the device
sustains ``P_io = q / (b/s·L0 + b/B)``.
Reading costs CPU too: each role's CPU per sample moves by ``c_b·(b(R) − b₀) +
c_r·(b(R)/s(R) − b₀/s(R₀))`` (per byte and per request), shared between the roles as their
CPU is.

**Pipeline**. Loaders and the trainer overlap their work: ``1/P = max(1/P_cpu, 1/P_io) +
(1 - ov)·min(1/P_cpu, 1/P_io)``, where ``ov`` is the calibrated overlap, deepened by the
DataLoader prefetch depth ``p`` as ``1 - (1 - ov)·(2/p)^γ``.

**Oversubscription** (CPU per sample is not fixed). A trainer's intra-op threads wait on each
other: when one is pre-empted the others spin or stall, so the trainer's CPU per sample grows
with crowding on its cores, ``a_t(k) = a_t* · g(k)`` with
``g = 1 + σ_s·max(0, T_t/k_t − 1) + (σ_f + σ_p·(k_t − 1))·c`` with ``c`` the loaders and other
tasks runnable on its cores, per core (other tasks counted at their weight's pull against the
trainer's, ``(1 + u_t)/(1 + W_t)``). ``σ_s`` is a fixed thread count crowded onto fewer cores;
``σ_p`` the same spin for threads that follow the trainer's cores (``autotune.client`` matches
torch's threads to them): each thread beyond the first may spin while another waits behind a
loader, so a trainer alone on one core with one thread wastes nothing.
The recorded row was measured at its own knobs, so the replay divides its ``g`` out first.
Justified by the explored rows of the recordings: on cnn (2 CPUs, 2 intra-op threads) the
trainer confined to one core spent 1.1e-2 CPU-s a sample against 2.7e-3 at the default (4×, and
0.17–0.19× the default's progress); randread likewise (5.9e-3 against 4.1e-4, 0.04–0.05×). The
same term is the gain of separating trainer and loaders, or of weights that stop a neighbour
pre-empting the trainer (cnn_noisy); a job with one intra-op thread per core gains from a core
split instead (``T_t/k_t ≤ 1``). Those 4× were the spin of two threads on one core, which the
client now avoids; cnn recorded since (2026-12-05) shows the other side, which ``σ_p`` fits
(σ_p 0.46, σ_f and σ_s 0): its trainer alone on one core ran 1.2-1.3× the rate with the
loaders on one core instead, the split 1.09-1.25× default for real, where the model without
``σ_p`` predicted every split at 0.83.

**The kernel's I/O workers** (weights can slow reads). Completions, page-cache work and
writeback run in kernel threads that weigh one nice-0 task: the heavier the job's weights on a
busy node, the longer they wait for a CPU, and every request waits with them. Device latency is
``L0·(1 + κ·busy·log2(1 + W_t + W_l))`` (``busy``: the share of the node the job and others keep
runnable, at most 1). Justified by randread's explored rows at 128 KiB: 8×/1× ran at 0.76 of
the default, 1×/8× at 0.82 and 4×/4× at 0.82, while other tasks' runnable time (the kernel's
workers) doubled (0.2 → 0.4–0.5 cores); the real 8×/8× ran at 0.73.

**Prefetch depth as a queue.** Loaders fill a buffer of ``p`` batches per worker that the
trainer drains; with service times that vary, a short buffer idles one side while the other
catches up. Throughput is ``1 − ν/(1 + p·n_l)`` of the unbuffered pipeline's (``n_l``: loader
workers runnable; ``ν`` in 0..1 the calibrated variability: 1 for exponential service times,
0 for steady ones), the finite-buffer tandem queue's loss at balance. The explored rows say the
depth moves little on the bundled workloads (cnn 1/2/4/8: 0.90/0.74–1.0/0.89/0.87 of default,
within their noise), and ``ν`` calibrates small there; a job with bursty loaders gets more.

**Read-ahead, measured**. Where a recording visited several read-ahead values, bytes per sample
at ``R`` come from the measured curve (median log bytes per sample per visited value, made
non-decreasing, interpolated in log–log) instead of the power law; the power law only
extrapolates beyond the values visited. Justified by randread: bytes per sample grow about as
``R`` up to 4 MiB and flatten above (8–16 MiB read 8–15 MB a sample, not the 30+ MB the power
law from 128 KiB says), which is where one anchor row said 1.08 and another 1.87.

**Read-ahead, by access pattern.** A job that streams some files and faults pages of another at
random (``mixed_io``) wants large read-ahead in one spell and small in the next; one curve for
the whole recording blends the two and says read-ahead does the same everywhere. Each row
carries the share ``r`` of its page-cache misses that random access brought in (the rest came
through the asynchronous read-ahead of a stream, which the tracepoints count), and a recording
with both kinds of rows gets two curves: ``b(R)/b(R₀) = (1 − r)·S_seq(R)/S_seq(R₀) +
r·S_rand(R)/S_rand(R₀)``. Justified by mixed_io's training rows: streaming rows read 0.3–0.6 MB
a sample at every read-ahead from 16 KiB to 16 MiB (their asynchronous read-ahead pages equal
their misses), random rows 60 KB at 16 KiB and 12 MB at 8 MiB (no asynchronous read-ahead, one
major fault per window). A recording of one kind (every other bundled one: r is 0 on every row
of cnn, cnn_noisy, phases and shards, about 1 on randread and neighbour_onoff) keeps one curve.

All of it is scalar Python: one answer costs a few microseconds, which keeps ReplayEnv above
10,000 steps/s.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from autotune.knobs import READAHEAD_DEFAULT_KB

KIB = 1024.0


@dataclass(frozen=True)
class Params:
    """Calibrated parameters of one workload (stored beside its trace).

    Attributes:
        u_trainer: the trainer's weight at the default setting, in nice-0 task units.
        u_loader: the loaders' weight likewise.
        overlap: share of the shorter of CPU and I/O time hidden behind the longer, 0..1.
        gamma: how much the prefetch depth deepens the overlap (0: not at all).
        latency_s: per-request device latency ``L0``.
        bandwidth: device bandwidth ``B``, bytes/s.
        streams: I/O requests in flight ``q``.
        read_exponent: ``k``, how bytes read per sample grow with read-ahead, ``b ∝ R^k``: 0 for
            sequential streams (read-ahead only moves reads earlier), near 1 for random access
            through a memory map (every fault reads around ``R``).
        cpu_per_byte: CPU-seconds the job spends per byte it reads from the device (page-cache
            insertion, copies, fault handling), so that reading more costs CPU too.
        cpu_per_request: CPU-seconds per device request it waits for (syscalls, faults, wake-ups):
            many small requests cost CPU that a few large ones do not.
        max_request: ``s_max``, the largest request the device takes, bytes.
        os_self: ``σ_s``, the trainer's CPU per sample grows by this per runnable trainer
            thread beyond one per core it may use (intra-op threads waiting on each other).
        os_foreign: ``σ_f``, likewise per runnable loader or other task on its cores, per core.
        os_spin: ``σ_p``, likewise per intra-op thread beyond the first, times the loaders and
            other tasks runnable on its cores per core, for a trainer whose threads follow its
            cores (``autotune.client.apply_threads``): one spins while another waits.
        kworker: ``κ``, how much heavier job weights slow the kernel's I/O workers.
        queue_var: ``ν``, variability of the loader-trainer queue (0: the depth does nothing).
        ra_points: read-ahead values (KiB) the recording measured bytes per sample at.
        ra_log_bytes: log bytes per sample there, relative (empty: the power law alone).
        ra_points_random, ra_log_bytes_random: the same curve for reads by random access, where
            a recording has both kinds (empty: every read follows the curve above).
    """

    u_trainer: float = 1.0
    u_loader: float = 1.0
    overlap: float = 0.5
    gamma: float = 0.0
    latency_s: float = 2e-4
    bandwidth: float = 1.0e9
    streams: float = 1.0
    read_exponent: float = 0.0
    cpu_per_byte: float = 0.0
    cpu_per_request: float = 0.0
    max_request: float = 1024 * KIB
    os_self: float = 0.0
    os_foreign: float = 0.0
    os_spin: float = 0.0
    kworker: float = 0.0
    queue_var: float = 0.0
    ra_points: tuple[float, ...] = ()
    ra_log_bytes: tuple[float, ...] = ()
    ra_points_random: tuple[float, ...] = ()
    ra_log_bytes_random: tuple[float, ...] = ()

    @property
    def crowds(self) -> bool:
        """Whether any oversubscription term is on (else the trainer's CPU per sample is
        the recorded one at every setting)."""
        return bool(self.os_self or self.os_foreign or self.os_spin)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def scalars(self) -> dict[str, float]:
        """The parameters that are single numbers."""
        return {k: v for k, v in asdict(self).items() if not isinstance(v, tuple)}

    def with_values(self, values: dict[str, float]) -> Params:
        """These parameters with some single-number ones replaced (unknown names ignored)."""
        return Params.from_dict({**self.to_dict(), **values})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Params:
        """From :meth:`to_dict`'s form; a calibration written before a parameter existed
        leaves it at its default (which adds nothing to the model)."""
        out: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in d:
                continue
            v = d[f.name]
            if f.name in CURVES:
                out[f.name] = tuple(float(x) for x in v)
            else:
                out[f.name] = float(v)
        for points, values in (CURVES[:2], CURVES[2:]):
            if len(out.get(points, ())) != len(out.get(values, ())):
                raise ValueError(f"{points} and {values} differ in length")
        return cls(**out)


CURVES = ("ra_points", "ra_log_bytes", "ra_points_random", "ra_log_bytes_random")


@dataclass(frozen=True)
class Demand:
    """What the job wanted in one interval, independent of the knobs.

    Attributes:
        a_trainer: trainer CPU-seconds per sample, at the recorded read-ahead.
        a_loader: loader CPU-seconds per sample, likewise.
        read_bytes: bytes read from the device per sample at the recorded read-ahead (0: the
            interval was served from the page cache).
        readahead_kb: the read-ahead in effect when it was recorded.
        other_cores: cores other tasks want.
        par_trainer: most cores the trainer can use at once (its runnable threads).
        par_loader: likewise for the loaders.
        weight_trainer, weight_loader, cpus_trainer, cpus_loader: the knobs in effect when it
            was recorded (the CPU per sample above was measured under their crowding).
        random_share: the share of its page-cache misses that random access brought in (page
            faults and synchronous reads), not a stream's asynchronous read-ahead; 0..1.
    """

    a_trainer: float
    a_loader: float
    read_bytes: float
    readahead_kb: float
    other_cores: float
    par_trainer: float
    par_loader: float
    weight_trainer: float = 1.0
    weight_loader: float = 1.0
    cpus_trainer: float = 1.0
    cpus_loader: float = 1.0
    random_share: float = 0.0


@dataclass(frozen=True)
class Knobs:
    """The knob values the model needs (by meaning, not by table order)."""

    weight_trainer: float = 1.0
    weight_loader: float = 1.0
    cpus_trainer: float = 1.0
    cpus_loader: float = 1.0
    readahead_kb: float = READAHEAD_DEFAULT_KB
    prefetch: float = 2.0

    @classmethod
    def from_values(cls, v: dict[str, float]) -> Knobs:
        return cls(
            weight_trainer=v["weight.trainer"],
            weight_loader=v["weight.loader"],
            cpus_trainer=v["cpus.trainer"],
            cpus_loader=v["cpus.loader"],
            readahead_kb=v["readahead"],
            prefetch=v["prefetch.loader"],
        )


@dataclass(frozen=True)
class Response:
    """What the demand gets under some knobs.

    Attributes:
        rate: samples per second.
        x_trainer, x_loader, x_other: cores each role receives.
        bytes_per_sample: bytes read from the device per sample.
        request_bytes: bytes per device request.
        latency_s: seconds per device request.
        cpu_bound: True when the CPU, not the device, sets the rate.
    """

    rate: float
    x_trainer: float
    x_loader: float
    x_other: float
    bytes_per_sample: float
    request_bytes: float
    latency_s: float
    cpu_bound: bool


def cores_for(share: float, ncpus: int) -> int:
    """Cores a CPU-share knob grants on a node of ``ncpus`` (whole cores, at least one)."""
    return max(1, min(ncpus, math.floor(share * ncpus + 0.5)))


def crowding(
    d: Demand,
    p: Params,
    ncpus: int,
    *,
    weight_trainer: float,
    cpus_trainer: float,
    cpus_loader: float,
) -> float:
    """``g``: how much the trainer's CPU per sample grows, at these knobs, against running
    alone with one thread per core (see the module docstring; 1 when nothing crowds it)."""
    if not p.crowds:
        return 1.0
    k_t, k_l = cores_for(cpus_trainer, ncpus), cores_for(cpus_loader, ncpus)
    return _crowding_at(d, p, ncpus, k_t, k_l, w_t=weight_trainer, maximum=max)


def _crowding_at(
    d: Demand, p: Params, ncpus: int, k_t: Any, k_l: Any, *, w_t: Any, maximum: Any
) -> Any:
    """:func:`crowding` on ``k_t`` / ``k_l`` cores at trainer weight ``w_t``: numbers with
    ``maximum=max``, arrays of settings (:func:`cpu_io_rates`) with ``np.maximum``, one
    formula for both (the builtin keeps the per-row replay fast)."""
    shared = maximum(0, k_t + k_l - ncpus)  # cores the trainer and the loaders may both use
    loaders_here = d.par_loader * shared / k_l
    pull = (1.0 + p.u_trainer) / (1.0 + maximum(w_t, 1e-6) * p.u_trainer)
    others_here = d.other_cores * k_t / ncpus * pull
    own = maximum(0.0, d.par_trainer / k_t - 1.0)
    crowd = (loaders_here + others_here) / k_t
    # Threads that follow the trainer's cores: each beyond the first may spin while another
    # waits behind a task on its core.
    spin = (k_t - 1) * crowd
    return 1.0 + p.os_self * own + p.os_spin * spin + p.os_foreign * crowd


def _rec_crowding(d: Demand, p: Params, ncpus: int) -> float:
    """:func:`crowding` at the knobs the row was recorded at."""
    return crowding(
        d,
        p,
        ncpus,
        weight_trainer=d.weight_trainer,
        cpus_trainer=d.cpus_trainer,
        cpus_loader=d.cpus_loader,
    )


def trainer_cpu(d: Demand, k: Knobs, p: Params, ncpus: int) -> float:
    """The trainer's CPU per sample at knobs ``k``: the recorded one with its crowding
    divided out and ``k``'s put in."""
    if not p.crowds:
        return d.a_trainer
    g = crowding(
        d,
        p,
        ncpus,
        weight_trainer=k.weight_trainer,
        cpus_trainer=k.cpus_trainer,
        cpus_loader=k.cpus_loader,
    )
    return d.a_trainer * g / _rec_crowding(d, p, ncpus)


def bytes_scale(
    readahead_kb: float, recorded_kb: float, p: Params, random_share: float = 0.0
) -> float:
    """``b(R)/b(R₀)``: from the measured curve where there is one, else the power law; with a
    curve for random access too, the two weighted by the share of reads each brought in."""
    ra, ra0 = max(readahead_kb, 4.0), max(recorded_kb, 4.0)
    if ra == ra0:
        return 1.0
    x, x0 = math.log(ra), math.log(ra0)
    if len(p.ra_points) >= 2:
        main = math.exp(
            _log_bytes(x, p.ra_points, p.ra_log_bytes, p.read_exponent)
            - _log_bytes(x0, p.ra_points, p.ra_log_bytes, p.read_exponent)
        )
    else:
        main = (ra / ra0) ** p.read_exponent if p.read_exponent else 1.0
    if len(p.ra_points_random) < 2 or random_share <= 0.0:
        return main
    pts, ys = p.ra_points_random, p.ra_log_bytes_random
    rand = math.exp(
        _log_bytes(x, pts, ys, p.read_exponent) - _log_bytes(x0, pts, ys, p.read_exponent)
    )
    r = min(random_share, 1.0)
    return (1.0 - r) * main + r * rand


def _log_bytes(x: float, points: tuple[float, ...], ys: tuple[float, ...], k: float) -> float:
    """A measured curve at log read-ahead ``x`` (KiB), the power law ``k`` past its ends."""
    xs = [math.log(max(r, 4.0)) for r in points]
    if x <= xs[0]:
        return ys[0] + k * (x - xs[0])
    if x >= xs[-1]:
        return ys[-1] + k * (x - xs[-1])
    return float(np.interp(x, xs, ys))


def _log_bytes_v(
    x: np.ndarray, points: tuple[float, ...], values: tuple[float, ...], k: float
) -> np.ndarray:
    xs = np.log(np.maximum(np.asarray(points), 4.0))
    ys = np.asarray(values)
    mid = np.interp(x, xs, ys)
    lo = ys[0] + k * (x - xs[0])
    hi = ys[-1] + k * (x - xs[-1])
    return np.where(x <= xs[0], lo, np.where(x >= xs[-1], hi, mid))


def _bytes_scale_v(ra_kb: np.ndarray, d: Demand, p: Params) -> np.ndarray:
    """:func:`bytes_scale` for many read-ahead values at once (``ra_kb`` at least 4)."""
    x, x0 = np.log(ra_kb), math.log(max(d.readahead_kb, 4.0))
    if len(p.ra_points) >= 2:
        main = np.exp(
            _log_bytes_v(x, p.ra_points, p.ra_log_bytes, p.read_exponent)
            - _log_bytes(x0, p.ra_points, p.ra_log_bytes, p.read_exponent)
        )
    elif p.read_exponent:
        main = np.exp(p.read_exponent * (x - x0))
    else:
        main = np.ones_like(x)
    if len(p.ra_points_random) < 2 or d.random_share <= 0.0:
        return main
    pts, ys = p.ra_points_random, p.ra_log_bytes_random
    rand = np.exp(
        _log_bytes_v(x, pts, ys, p.read_exponent) - _log_bytes(x0, pts, ys, p.read_exponent)
    )
    r = min(d.random_share, 1.0)
    return (1.0 - r) * main + r * rand


def worker_delay(d: Demand, k: Knobs, p: Params, ncpus: int) -> float:
    """The factor on device latency from the kernel's I/O workers waiting behind the job's
    weights (1 when ``kworker`` is 0)."""
    if not p.kworker:
        return 1.0
    busy = min(1.0, (d.par_trainer + d.par_loader + d.other_cores) / max(ncpus, 1))
    w_job = k.weight_trainer * p.u_trainer + k.weight_loader * p.u_loader
    return 1.0 + p.kworker * busy * math.log2(1.0 + w_job)


def queue_efficiency(prefetch: float, loaders: float, p: Params) -> float:
    """Throughput kept by a buffer of ``prefetch`` batches per loader worker (see the module
    docstring; 1 when ``queue_var`` is 0 or there are no loaders)."""
    if not p.queue_var or loaders <= 0.0:
        return 1.0
    return 1.0 - p.queue_var / (1.0 + max(prefetch, 1.0) * max(loaders, 1.0))


def cpu_rate(
    d: Demand,
    k: Knobs,
    p: Params,
    ncpus: int,
    *,
    a_t: float | None = None,
    a_l: float | None = None,
) -> float:
    """The highest sample rate the CPUs allow (see the module docstring).

    ``a_t`` / ``a_l`` override the demand's CPU per sample (the I/O part moved them).
    """
    a_t = d.a_trainer if a_t is None else a_t
    a_l = d.a_loader if a_l is None else a_l
    if p.crowds and d.a_trainer > 0.0:
        a_t *= trainer_cpu(d, k, p, ncpus) / d.a_trainer
    a_sum = a_t + a_l
    if a_sum <= 0.0:
        return math.inf
    k_t = cores_for(k.cpus_trainer, ncpus)
    k_l = cores_for(k.cpus_loader, ncpus)
    union = min(ncpus, k_t + k_l) if a_l > 0.0 else k_t
    cap = math.inf
    if a_t > 0.0:
        cap = min(cap, min(k_t, max(d.par_trainer, 1e-3)) / a_t)
    if a_l > 0.0:
        cap = min(cap, min(k_l, max(d.par_loader, 1e-3)) / a_l)
    other = max(0.0, d.other_cores - (ncpus - union))
    if other <= 0.0:
        return min(cap, union / a_sum)
    w_t = max(k.weight_trainer * p.u_trainer, 1e-6)
    w_l = max(k.weight_loader * p.u_loader, 1e-6)
    m = max(a_t / w_t, a_l / w_l if a_l > 0.0 else 0.0)
    p_full = (union - other) / a_sum  # other tasks get all they want
    rate = p_full if p_full > 0.0 and p_full * m >= 1.0 else union / (a_sum + m * other)
    return min(cap, rate)


def io_demand(d: Demand, k: Knobs, p: Params) -> tuple[float, float, float]:
    """At read-ahead ``k.readahead_kb``: bytes per sample, and the trainer's and loaders' CPU
    per sample once reading costs what it costs there."""
    if d.read_bytes <= 0.0:
        return 0.0, d.a_trainer, d.a_loader
    ra = max(k.readahead_kb, 4.0) * KIB
    ra0 = max(d.readahead_kb, 4.0) * KIB
    b = d.read_bytes * bytes_scale(k.readahead_kb, d.readahead_kb, p, d.random_share)
    if not p.cpu_per_byte and not p.cpu_per_request:
        return b, d.a_trainer, d.a_loader
    s, s0 = min(ra, p.max_request), min(ra0, p.max_request)
    extra = p.cpu_per_byte * (b - d.read_bytes) + p.cpu_per_request * (b / s - d.read_bytes / s0)
    a_sum = d.a_trainer + d.a_loader
    if a_sum <= 0.0:
        return b, d.a_trainer, d.a_loader
    share_t = d.a_trainer / a_sum
    return (
        b,
        max(d.a_trainer + extra * share_t, 1e-9),
        max(d.a_loader + extra * (1.0 - share_t), 0.0),
    )


def respond(d: Demand, k: Knobs, p: Params, ncpus: int) -> Response:
    """The model's answer for one interval's demand under knobs ``k``."""
    b, a_t, a_l = io_demand(d, k, p)
    p_cpu = cpu_rate(d, k, p, ncpus, a_t=a_t, a_l=a_l)
    ra = max(k.readahead_kb, 4.0) * KIB
    s = min(ra, p.max_request)
    l0 = p.latency_s * worker_delay(d, k, p, ncpus)
    lat = l0 + s / p.bandwidth
    p_io = p.streams / (b / s * l0 + b / p.bandwidth) if b > 0.0 else math.inf
    if math.isinf(p_cpu) and math.isinf(p_io):
        rate = 0.0  # an interval that wanted nothing (no samples) gets nothing
    elif math.isinf(p_io) or math.isinf(p_cpu):
        rate = min(p_cpu, p_io)
    else:
        depth = max(k.prefetch, 1.0)
        ov = min(max(1.0 - (1.0 - p.overlap) * (2.0 / depth) ** p.gamma, 0.0), 1.0)
        rate = 1.0 / (max(1.0 / p_cpu, 1.0 / p_io) + (1.0 - ov) * min(1.0 / p_cpu, 1.0 / p_io))
    if math.isinf(rate):
        rate = 0.0
    rate *= queue_efficiency(k.prefetch, loaders_of(d), p)
    a_t = trainer_cpu(d, k, p, ncpus) * a_t / d.a_trainer if d.a_trainer > 0.0 else a_t
    x_t = rate * a_t
    x_l = rate * a_l
    x_o = max(0.0, min(d.other_cores, ncpus - x_t - x_l))
    return Response(rate, x_t, x_l, x_o, b, s, lat, p_cpu <= p_io)


@dataclass(frozen=True)
class KnobGrid:
    """Many knob settings at once, one array per knob (the same meaning as :class:`Knobs`)."""

    weight_trainer: np.ndarray
    weight_loader: np.ndarray
    cpus_trainer: np.ndarray
    cpus_loader: np.ndarray
    readahead_kb: np.ndarray
    prefetch: np.ndarray

    def __len__(self) -> int:
        return len(self.readahead_kb)

    @classmethod
    def from_values(cls, v: dict[str, np.ndarray]) -> KnobGrid:
        return cls(
            weight_trainer=np.asarray(v["weight.trainer"], np.float64),
            weight_loader=np.asarray(v["weight.loader"], np.float64),
            cpus_trainer=np.asarray(v["cpus.trainer"], np.float64),
            cpus_loader=np.asarray(v["cpus.loader"], np.float64),
            readahead_kb=np.asarray(v["readahead"], np.float64),
            prefetch=np.asarray(v["prefetch.loader"], np.float64),
        )


def cpu_io_rates(d: Demand, g: KnobGrid, p: Params, ncpus: int) -> tuple[np.ndarray, np.ndarray]:
    """For every setting of ``g``: the rate the CPUs allow and the rate the device allows
    (:func:`cpu_rate` and the I/O roofline of :func:`respond`, vectorized; ``inf`` where
    unbounded). Neither depends on the prefetch depth."""
    inf = np.inf
    n = len(g)
    ra = np.maximum(g.readahead_kb, 4.0) * KIB
    a_t = np.full(n, d.a_trainer)
    a_l = np.full(n, d.a_loader)
    b = np.zeros(n)
    s = np.minimum(ra, p.max_request)
    with np.errstate(divide="ignore", invalid="ignore"):
        if d.read_bytes > 0.0:
            ra0 = max(d.readahead_kb, 4.0) * KIB
            b = d.read_bytes * _bytes_scale_v(ra / KIB, d, p)
            a_sum0 = d.a_trainer + d.a_loader
            if (p.cpu_per_byte or p.cpu_per_request) and a_sum0 > 0.0:
                s0 = min(ra0, p.max_request)
                extra = p.cpu_per_byte * (b - d.read_bytes) + p.cpu_per_request * (
                    b / s - d.read_bytes / s0
                )
                share_t = d.a_trainer / a_sum0
                a_t = np.maximum(d.a_trainer + extra * share_t, 1e-9)
                a_l = np.maximum(d.a_loader + extra * (1.0 - share_t), 0.0)
        k_t = np.clip(np.floor(g.cpus_trainer * ncpus + 0.5), 1, ncpus)
        k_l = np.clip(np.floor(g.cpus_loader * ncpus + 0.5), 1, ncpus)
        if p.crowds and d.a_trainer > 0.0:
            crowd = _crowding_at(d, p, ncpus, k_t, k_l, w_t=g.weight_trainer, maximum=np.maximum)
            a_t = a_t * crowd / _rec_crowding(d, p, ncpus)
        a_sum = a_t + a_l
        union = np.where(a_l > 0.0, np.minimum(ncpus, k_t + k_l), k_t)
        cap = np.full(n, inf)
        cap_t = np.minimum(k_t, max(d.par_trainer, 1e-3)) / a_t
        cap = np.where(a_t > 0.0, np.minimum(cap, cap_t), cap)
        cap_l = np.minimum(k_l, max(d.par_loader, 1e-3)) / a_l
        cap = np.where(a_l > 0.0, np.minimum(cap, cap_l), cap)
        other = np.maximum(0.0, d.other_cores - (ncpus - union))
        w_t = np.maximum(g.weight_trainer * p.u_trainer, 1e-6)
        w_l = np.maximum(g.weight_loader * p.u_loader, 1e-6)
        m = np.maximum(a_t / w_t, np.where(a_l > 0.0, a_l / w_l, 0.0))
        p_full = (union - other) / a_sum
        shared = np.where((p_full > 0.0) & (p_full * m >= 1.0), p_full, union / (a_sum + m * other))
        p_cpu = np.minimum(cap, np.where(other <= 0.0, union / a_sum, shared))
        p_cpu = np.where(a_sum <= 0.0, inf, p_cpu)
        l0 = np.full(n, p.latency_s)
        if p.kworker:
            busy = min(1.0, (d.par_trainer + d.par_loader + d.other_cores) / max(ncpus, 1))
            w_job = g.weight_trainer * p.u_trainer + g.weight_loader * p.u_loader
            l0 = l0 * (1.0 + p.kworker * busy * np.log2(1.0 + w_job))
        p_io = np.where(b > 0.0, p.streams / (b / s * l0 + b / p.bandwidth), inf)
    return p_cpu, p_io


def pipeline_rates(
    p_cpu: np.ndarray, p_io: np.ndarray, prefetch: np.ndarray, p: Params, loaders: float = 0.0
) -> np.ndarray:
    """:func:`respond`'s rate from the CPU and device rates and the prefetch depth (arrays that
    broadcast together); ``loaders``: the demand's loader workers (0 when it has no loader
    CPU), for the queue between them and the trainer."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ov = np.clip(1.0 - (1.0 - p.overlap) * (2.0 / np.maximum(prefetch, 1.0)) ** p.gamma, 0, 1)
        inv_c, inv_i = 1.0 / p_cpu, 1.0 / p_io
        rate = 1.0 / (np.maximum(inv_c, inv_i) + (1.0 - ov) * np.minimum(inv_c, inv_i))
        rate = np.where(np.isinf(p_cpu) & np.isinf(p_io), 0.0, rate)
        if p.queue_var and loaders > 0.0:
            rate = rate * (
                1.0 - p.queue_var / (1.0 + np.maximum(prefetch, 1.0) * max(loaders, 1.0))
            )
    return np.where(np.isfinite(rate), rate, 0.0)


def loaders_of(d: Demand) -> float:
    """The loader workers the prefetch queue is between (0: the demand has no loader CPU)."""
    return d.par_loader if d.a_loader > 0.0 else 0.0


def respond_rates(d: Demand, g: KnobGrid, p: Params, ncpus: int) -> np.ndarray:
    """:func:`respond`'s rate for every setting of ``g`` at once (numpy; the same arithmetic,
    held equal to the scalar model by a test). For exhaustive searches over the ladders."""
    p_cpu, p_io = cpu_io_rates(d, g, p, ncpus)
    return pipeline_rates(p_cpu, p_io, g.prefetch, p, loaders_of(d))
