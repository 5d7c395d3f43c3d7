"""CPU topology: online CPUs, physical cores with their SMT siblings, NUMA nodes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SYS_CPU = Path("/sys/devices/system/cpu")
SYS_NODE = Path("/sys/devices/system/node")


def parse_cpulist(text: str) -> list[int]:
    """Parse a kernel CPU list such as ``0-3,8,10-11``."""
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def format_cpulist(cpus: list[int] | tuple[int, ...] | set[int]) -> str:
    """Format CPUs as a kernel CPU list (``0-3,8``)."""
    ordered = sorted(set(cpus))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


@dataclass(frozen=True)
class Topology:
    """The node's CPUs.

    Attributes:
        cpus: online CPU ids.
        cores: physical cores, each a tuple of its SMT sibling CPUs (one CPU when no SMT).
        numa_nodes: NUMA node id → its CPUs.
    """

    cpus: tuple[int, ...]
    cores: tuple[tuple[int, ...], ...]
    numa_nodes: dict[int, tuple[int, ...]]

    @property
    def smt(self) -> bool:
        return any(len(core) > 1 for core in self.cores)


def read(sys_cpu: Path = SYS_CPU, sys_node: Path = SYS_NODE) -> Topology:
    """Read the topology from sysfs."""
    cpus = parse_cpulist((sys_cpu / "online").read_text())
    cores: dict[tuple[int, ...], None] = {}
    for cpu in cpus:
        sib = sys_cpu / f"cpu{cpu}" / "topology" / "thread_siblings_list"
        group = tuple(parse_cpulist(sib.read_text())) if sib.is_file() else (cpu,)
        cores[tuple(c for c in group if c in cpus)] = None
    nodes: dict[int, tuple[int, ...]] = {}
    for node in sorted(sys_node.glob("node[0-9]*")) if sys_node.is_dir() else []:
        cpulist = node / "cpulist"
        if cpulist.is_file():
            nodes[int(node.name[4:])] = tuple(parse_cpulist(cpulist.read_text()))
    return Topology(cpus=tuple(cpus), cores=tuple(cores), numa_nodes=nodes)
