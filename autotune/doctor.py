"""`autotune doctor`'s checks: what this node supports and what the tuner will use.

Each check is a :class:`Check`: a yes/no, what was found, and when no, why and what to install.
The BPF check is not a guess from files: it compiles, loads and attaches a tracepoint program,
forks a process and reads the event back.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from autotune.actuators import registry
from autotune.scx import scheduler as scx
from autotune.system import blockdev, cgroups, gpu, kernel, topology

# The libraries offline training needs; any missing one is a broken install.
REQUIRED_MODULES = ("torch", "gymnasium", "stable_baselines3", "mlflow", "pyarrow", "duckdb")


@dataclass
class Check:
    """One capability of the node."""

    name: str
    ok: bool
    found: str
    reason: str = ""
    fix: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def check_python() -> Check:
    versions: dict[str, str] = {}
    missing: list[str] = []
    for mod in REQUIRED_MODULES:
        try:
            versions[mod] = str(getattr(importlib.import_module(mod), "__version__", "?"))
        except Exception as e:
            missing.append(f"{mod} ({type(e).__name__})")
    if missing:
        return Check(
            "python", False, "", f"cannot import {', '.join(missing)}", "run scripts/bootstrap.sh"
        )
    found = ", ".join(f"{k} {v}" for k, v in versions.items())
    return Check("python", True, found, data=versions)


def check_bpf_probe() -> Check:
    """Load bpf/probe.bpf.c, fork a process, and read the fork count back."""
    from autotune.telemetry.loader import BpfUnavailable, load

    t0 = time.perf_counter()
    try:
        prog = load("probe")
    except BpfUnavailable as e:
        fix = "run as root" if "root" in str(e) else "run scripts/bootstrap.sh"
        return Check("bpf", False, "", str(e), fix, data={"loaded": False})
    try:
        compile_s = time.perf_counter() - t0
        for _ in range(3):
            subprocess.run(["true"], check=False)
        events = 0
        for value in prog["forks"].values():
            events = int(value.value)
        loaded = True
    finally:
        prog.cleanup()
    data = {"loaded": loaded, "events": events, "compile_s": round(compile_s, 3)}
    if events < 1:
        return Check(
            "bpf",
            False,
            "loaded, but saw no fork events",
            "sched:sched_process_fork did not fire",
            "check tracefs and perf_event_paranoid",
            data=data,
        )
    found = f"tracepoint program loaded and fired ({events} forks seen, built in {compile_s:.1f}s)"
    return Check("bpf", True, found, data=data)


def check_headers() -> Check:
    h = kernel.headers()
    data = asdict(h)
    if h.mode == "missing":
        return Check(
            "kernel headers",
            False,
            "",
            f"no headers at {h.path}",
            "run scripts/bootstrap.sh (installs the distribution's headers)",
            data=data,
        )
    note = " (safe: tracepoint-only programs, see bpf/README.md)" if h.mode == "fallback" else ""
    return Check("kernel headers", True, f"{h.mode}: {h.version}{note}", data=data)


def check_btf() -> Check:
    if kernel.has_btf():
        return Check("btf", True, str(kernel.BTF_VMLINUX))
    return Check(
        "btf", False, "", "no /sys/kernel/btf/vmlinux", "a kernel built with CONFIG_DEBUG_INFO_BTF"
    )


def check_sched_ext() -> Check:
    s = kernel.sched_ext()
    ours = scx.status()
    data: dict[str, Any] = {
        **asdict(s),
        "scheduler": {"loaded": ours.loaded, "ops": ours.ops, "why_not": ours.reason},
    }
    if not s.supported:
        return Check(
            "sched_ext",
            False,
            "",
            f"{s.reason}, so our scheduler cannot load",
            "Linux 6.12+ with CONFIG_SCHED_CLASS_EXT=y; weights use cgroups meanwhile",
            data=data,
        )
    mine = "our scheduler loaded" if ours.loaded else f"ours not loaded: {ours.reason}"
    return Check("sched_ext", True, f"state: {s.state}; {mine}", data=data)


def check_cgroups() -> Check:
    m = cgroups.mounts()
    v1 = sorted(c for c in m.v1 if c in {"cpu", "cpuset"})
    parts = []
    if v1:
        parts.append("v1 " + ", ".join(f"{c} at {m.v1[c]}" for c in v1))
    if m.v2 is not None:
        parts.append(f"v2 at {m.v2} ({', '.join(m.v2_controllers) or 'no controllers'})")
    data = {
        "v1": {k: str(v) for k, v in m.v1.items()},
        "v2": str(m.v2) if m.v2 else None,
        "v2_controllers": list(m.v2_controllers),
    }
    has_cpu = "cpu" in m.v1 or "cpu" in m.v2_controllers
    if not has_cpu:
        return Check(
            "cgroups",
            False,
            "; ".join(parts),
            "no cpu controller (weights fall back to nice values)",
            "mount the cpu controller",
            data=data,
        )
    return Check("cgroups", True, "; ".join(parts), data=data)


def check_block() -> Check:
    devs = blockdev.devices()
    data = {"devices": [asdict(d) for d in devs]}
    if not devs:
        return Check("block devices", False, "", "no block devices with media", "", data=data)
    found = ", ".join(f"{d.name} read_ahead_kb={d.read_ahead_kb}" for d in devs)
    return Check("block devices", True, found, data=data)


def check_topology() -> Check:
    t = topology.read()
    data = {
        "cpus": list(t.cpus),
        "cores": [list(c) for c in t.cores],
        "smt": t.smt,
        "numa_nodes": {str(k): list(v) for k, v in t.numa_nodes.items()},
    }
    found = (
        f"{len(t.cpus)} CPUs, {len(t.cores)} cores, SMT {'on' if t.smt else 'off'}, "
        f"{max(len(t.numa_nodes), 1)} NUMA node(s)"
    )
    return Check("cpu topology", True, found, data=data)


def check_gpu() -> Check:
    r = gpu.probe()
    if not r.available:
        return Check("gpu", False, "", r.reason, "optional: NVIDIA driver for GPU telemetry")
    data = {"gpus": [asdict(g) for g in r.gpus]}
    found = ", ".join(f"{g.index}: {g.name}" for g in r.gpus)
    return Check("gpu", True, found, data=data)


def check_tracking(uri: str) -> Check:
    return Check("mlflow tracking", True, uri, data={"uri": uri})


def check_backends() -> Check:
    choices = registry.choices()
    found = "; ".join(f"{c.family}: {c.backend}" for c in choices)
    data = {str(c.family): {"backend": c.backend, "reason": c.reason} for c in choices}
    return Check("backends", True, found, data=data)


@dataclass
class Report:
    """Everything doctor found; ``ok`` is False only for a broken install."""

    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks if c.name == "python")

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "root": os.geteuid() == 0,
            "kernel": kernel.release(),
            "checks": {c.name: asdict(c) for c in self.checks},
        }


def run(tracking_uri: str) -> Report:
    """Run every check."""
    checks = [
        check_python(),
        check_bpf_probe(),
        check_headers(),
        check_btf(),
        check_sched_ext(),
        check_cgroups(),
        check_block(),
        check_topology(),
        check_gpu(),
        check_tracking(tracking_uri),
        check_backends(),
    ]
    return Report(checks)
