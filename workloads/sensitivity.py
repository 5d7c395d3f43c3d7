"""Where the headroom is: each workload's samples/s at a few settings of the knob that matters.

    python -m workloads.sensitivity [--repeat 3] [--workloads shards,randread] [--json F]

I/O workloads run at read-ahead 16 KiB, 128 KiB (the common kernel default: the baseline),
1 MiB and 8 MiB (this VM's disk); the random reader also with ``pread`` instead of a memory map,
the pattern it does not use, to show why. The CNN runs quiet (the baseline), beside
``stress-ng --cpu 2``, and beside it with 8× the CPU weight for the job (through the actuators).
Settings are interleaved within each repeat, so drift on this shared VM hits all alike; each
ratio is taken against the baseline of the same repeat, and medians and ranges are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autotune.errors import UserError
from autotune.knobs import READAHEAD_DEFAULT_KB
from workloads.knobs import format_knobs
from workloads.run import Result, Workbench, on_sigterm

BASELINE_KB = READAHEAD_DEFAULT_KB  # the common kernel default; this VM's disk ships with 8 MiB
READAHEADS = (16.0, BASELINE_KB, 1024.0, 8192.0)


@dataclass(frozen=True)
class Setting:
    """One cell of the table: a workload under fixed knobs."""

    label: str
    workload: str
    knobs: dict[str, float] = field(default_factory=dict)
    noisy: bool | None = None
    extra: tuple[str, ...] = ()
    baseline: bool = False


def _readahead_rows(workload: str, extra: tuple[str, ...] = (), tag: str = "") -> list[Setting]:
    return [
        Setting(
            f"{tag}readahead={kb:g}",
            workload,
            {"readahead": kb},
            extra=extra,
            baseline=kb == BASELINE_KB,
        )
        for kb in READAHEADS
    ]


def _cnn_rows() -> list[Setting]:
    eight = {"weight.trainer": 8.0, "weight.loader": 8.0}
    return [
        Setting("quiet", "cnn", noisy=False, baseline=True),
        Setting("stress-ng --cpu 2", "cnn", noisy=True),
        Setting("stress-ng + 8x weight", "cnn", eight, noisy=True),
    ]


GROUPS: dict[str, list[Setting]] = {
    "cnn": _cnn_rows(),
    "shards": _readahead_rows("shards"),
    "randread": _readahead_rows("randread"),
    "randread_pread": [
        s
        for s in _readahead_rows("randread", ("--access", "pread"), "pread ")
        if s.knobs["readahead"] in (BASELINE_KB, 8192.0)
    ],
    "phases": _readahead_rows("phases"),
}


def _stats(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def _phase_stats(rs: list[Result]) -> dict[str, dict[str, float]] | None:
    """Median and range of each phase's seconds, for jobs that report them (phases)."""
    if not all("load_s" in r.job and "compute_s" in r.job for r in rs):
        return None
    return {p: _stats([float(r.job[p]) for r in rs]) for p in ("load_s", "compute_s")}


def measure(groups: list[str], repeat: int, size: str) -> dict[str, Any]:
    """Run every setting of ``groups`` ``repeat`` times, interleaved; return the table."""
    runs: dict[tuple[str, str], list[Result]] = {}
    started = time.time()
    load_start = os.getloadavg()
    with Workbench(size) as wb:
        for name in groups:  # make all data first: generation must not sit between runs
            wb.prepare(GROUPS[name][0].workload)
        for rep in range(repeat):
            for name in groups:
                # Each repeat starts at another setting: a load that rises or falls over a
                # repeat does not always favour the same one.
                settings = GROUPS[name]
                k = rep % len(settings)
                for s in settings[k:] + settings[:k]:
                    r = wb.run(s.workload, None, s.knobs, s.noisy, extra_args=s.extra)
                    runs.setdefault((name, s.label), []).append(r)
                    print(f"[{rep + 1}/{repeat}] {name:<14} {r.line()}", file=sys.stderr)
    rows = []
    for name in groups:
        base = next(s for s in GROUPS[name] if s.baseline)
        base_runs = runs[(name, base.label)]
        for s in GROUPS[name]:
            rs = runs[(name, s.label)]
            ratios = [r.samples_per_s / b.samples_per_s for r, b in zip(rs, base_runs, strict=True)]
            rows.append(
                {
                    "group": name,
                    "setting": s.label,
                    "knobs": format_knobs(s.knobs),
                    "baseline": base.label,
                    "samples": rs[0].samples,
                    "samples_per_s": _stats([r.samples_per_s for r in rs]),
                    "ratio": _stats(ratios),
                    "wall_s": _stats([r.wall_s for r in rs]),
                    "read_mib": _stats([r.device_read_mib or 0.0 for r in rs]),
                    "phases_s": _phase_stats(rs),
                    "load1": [r.load1 for r in rs],
                    "in_effect": rs[-1].in_effect,
                }
            )
    return {
        "repeat": repeat,
        "size": size,
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "minutes": round((time.time() - started) / 60, 1),
        "uptime_load_start": load_start,
        "uptime_load_end": os.getloadavg(),
        "ncpu": os.cpu_count(),
        "rows": rows,
        "runs": {f"{g}/{label}": [asdict(r) for r in rs] for (g, label), rs in runs.items()},
    }


def render(table: dict[str, Any]) -> str:
    """The table as text: medians with ranges, ratios against each group's baseline."""
    lines = [
        f"sensitivity: {table['repeat']} interleaved repeats, {table['size']} data, "
        f"{table['minutes']} min, started {table['started']}; load average "
        f"{' '.join(f'{x:.2f}' for x in table['uptime_load_start'])} at start, "
        f"{' '.join(f'{x:.2f}' for x in table['uptime_load_end'])} at end, "
        f"{table['ncpu']} CPUs",
        f"{'group':<14} {'setting':<24} {'samples/s median (range)':<28} "
        f"{'× baseline (range)':<22} {'wall s':>7} {'read MiB':>9}",
    ]
    for row in table["rows"]:
        sps, ratio = row["samples_per_s"], row["ratio"]
        mark = "  (baseline)" if row["setting"] == row["baseline"] else ""
        lines.append(
            f"{row['group']:<14} {row['setting']:<24} "
            f"{sps['median']:>8.0f} ({sps['min']:.0f}–{sps['max']:.0f})".ljust(68)
            + f"{ratio['median']:>6.2f} ({ratio['min']:.2f}–{ratio['max']:.2f})".ljust(22)
            + f"{row['wall_s']['median']:>8.1f} {row['read_mib']['median']:>9.0f}{mark}"
        )
        if row["phases_s"]:
            load, compute = row["phases_s"]["load_s"], row["phases_s"]["compute_s"]
            lines.append(
                f"{'':<14}   load phase {load['median']:.1f} s "
                f"({load['min']:.1f}–{load['max']:.1f}), compute phase {compute['median']:.1f} s "
                f"({compute['min']:.1f}–{compute['max']:.1f})"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="workloads.sensitivity", description=__doc__)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workloads", default=",".join(GROUPS), help="comma-separated groups")
    p.add_argument("--size", default="default", choices=("default", "tiny"))
    p.add_argument("--json", type=Path, help="also write the full table (every run) here")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        groups = [g for g in args.workloads.split(",") if g]
        unknown = [g for g in groups if g not in GROUPS]
        if unknown or not groups:
            raise UserError(f"unknown group {unknown}; choose from {', '.join(GROUPS)}")
        if args.repeat < 1:
            raise UserError("--repeat must be at least 1")
        table = measure(groups, args.repeat, args.size)
    except UserError as e:
        print(f"sensitivity: {e}", file=sys.stderr)
        return 2
    print(render(table))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_name(args.json.name + ".tmp")
        tmp.write_text(json.dumps(table, indent=1))
        tmp.rename(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
