"""Which workloads a command means: bundled names, trace paths, or globs of paths."""

from __future__ import annotations

import glob
from collections.abc import Sequence

from autotune.envs.workload import Workload, list_bundled, load
from autotune.errors import UserError


def workloads(patterns: Sequence[str]) -> list[Workload]:
    """Load the workloads named by ``patterns`` (default: every bundled workload)."""
    if not patterns:
        names = list_bundled()
        if not names:
            raise UserError("no bundled workloads found; give --workload")
        return [load(n) for n in names]
    out: list[Workload] = []
    for p in patterns:
        if any(c in p for c in "*?["):
            paths = sorted(glob.glob(p))
            paths = [q for q in paths if q.endswith((".parquet", ".partial"))]
            if not paths:
                raise UserError(f"--workload {p!r} matches no trace files")
            out += [load(q) for q in paths]
        else:
            out.append(load(p))
    seen: set[str] = set()
    unique = []
    for w in out:
        if str(w.path) not in seen:
            seen.add(str(w.path))
            unique.append(w)
    return unique
