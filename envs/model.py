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

All of it is scalar Python: one answer costs a few microseconds, which keeps ReplayEnv above
10,000 steps/s.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

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

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, float]) -> Params:
        known = {f.name for f in fields(cls)}
        return cls(**{k: float(v) for k, v in d.items() if k in known})


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
    """

    a_trainer: float
    a_loader: float
    read_bytes: float
    readahead_kb: float
    other_cores: float
    par_trainer: float
    par_loader: float


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
    b = d.read_bytes * (ra / ra0) ** p.read_exponent if p.read_exponent else d.read_bytes
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
    lat = p.latency_s + s / p.bandwidth
    p_io = p.streams / (b / s * p.latency_s + b / p.bandwidth) if b > 0.0 else math.inf
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
            b = (
                d.read_bytes * (ra / ra0) ** p.read_exponent
                if p.read_exponent
                else b + d.read_bytes
            )
            a_sum0 = d.a_trainer + d.a_loader
            if (p.cpu_per_byte or p.cpu_per_request) and a_sum0 > 0.0:
                s0 = min(ra0, p.max_request)
                extra = p.cpu_per_byte * (b - d.read_bytes) + p.cpu_per_request * (
                    b / s - d.read_bytes / s0
                )
                share_t = d.a_trainer / a_sum0
                a_t = np.maximum(d.a_trainer + extra * share_t, 1e-9)
                a_l = np.maximum(d.a_loader + extra * (1.0 - share_t), 0.0)
        a_sum = a_t + a_l
        k_t = np.clip(np.floor(g.cpus_trainer * ncpus + 0.5), 1, ncpus)
        k_l = np.clip(np.floor(g.cpus_loader * ncpus + 0.5), 1, ncpus)
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
        p_io = np.where(b > 0.0, p.streams / (b / s * p.latency_s + b / p.bandwidth), inf)
    return p_cpu, p_io


def pipeline_rates(
    p_cpu: np.ndarray, p_io: np.ndarray, prefetch: np.ndarray, p: Params
) -> np.ndarray:
    """:func:`respond`'s rate from the CPU and device rates and the prefetch depth (arrays that
    broadcast together)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ov = np.clip(1.0 - (1.0 - p.overlap) * (2.0 / np.maximum(prefetch, 1.0)) ** p.gamma, 0, 1)
        inv_c, inv_i = 1.0 / p_cpu, 1.0 / p_io
        rate = 1.0 / (np.maximum(inv_c, inv_i) + (1.0 - ov) * np.minimum(inv_c, inv_i))
        rate = np.where(np.isinf(p_cpu) & np.isinf(p_io), 0.0, rate)
    return np.where(np.isfinite(rate), rate, 0.0)


def respond_rates(d: Demand, g: KnobGrid, p: Params, ncpus: int) -> np.ndarray:
    """:func:`respond`'s rate for every setting of ``g`` at once (numpy; the same arithmetic,
    held equal to the scalar model by a test). For exhaustive searches over the ladders."""
    p_cpu, p_io = cpu_io_rates(d, g, p, ncpus)
    return pipeline_rates(p_cpu, p_io, g.prefetch, p)
