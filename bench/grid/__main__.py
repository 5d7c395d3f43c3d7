"""The real grid: every knob family's settings run for real on one workload, and its static-best.

    python -m bench.grid --workload NAME [--repeats 2] [--verify-repeats 3] [--samples N]
        [--target-wall 8] [--out bench/results/grid.json]

One workload per call (any of workloads/catalog.py), on a data disk of its own, cold cache each
run, knobs held by the harness (workloads.run.Workbench) and restored after every run; spells,
a neighbour's or the job's own, last 4-8 s as in bench.online (``BENCH_SPELL_S``), so that the
static-best of a job with spells is judged over several of each kind:

1. a probe at the default sizes the runs (samples for a default run of about --target-wall
   seconds of wall time; skipped with --samples);
2. the grid: the default, at least five settings per knob family spread over its ladder (those
   the workload's recording never visited first) and the replay's current static-best, every
   setting once per repeat, the order rotated each repeat. A family the job never acknowledges
   (prefetch without DataLoader workers) stops after its first run, recorded as not applicable
   with the reason;
3. the best three, and two combined settings built from the grid (8x weights with the best
   read-ahead, a core split with the best weights), again with fresh repeats beside the default,
   rotated; the best of them, if it beats the default, is the real static-best.

Ratios are wall-time rates (samples / wall seconds) over the default's in the same repeat:
geometric mean over repeats, 95 % bootstrap interval. Every run's raw figures go to the result
file under the workload's key (other workloads' entries are kept), with commit, machine, date.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from autotune.errors import UserError
from bench.grid.grid import Grid, load_doc, run_grid, size
from bench.grid.replay import defaults_of, recording, replay_pick, visited
from bench.grid.settings import DEFAULT, plan
from bench.results import provenance, write_json
from workloads import catalog
from workloads.run import BENCH_SPELL_S, Workbench, on_sigterm

OUT = Path("bench/results/grid.json")
PROBE_S = 4.0  # the probe's length at the recorded rate


def save(path: Path, doc: dict[str, Any], name: str, entry: dict[str, Any]) -> None:
    """Merge one workload's entry and write the file whole."""
    head = provenance()
    write_json(path, {**doc, **head, "workloads": {**doc["workloads"], name: {**head, **entry}}})


def show(name: str, entry: dict[str, Any]) -> None:
    print(f"\n{name}: {entry['samples']} samples per run, base {entry['base']}")
    for s in entry["settings"]:
        cells = []
        for stage in ("grid", "verify"):
            if stage in s:
                r = s[stage]
                cells.append(f"{stage} {r['ratio']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]")
        mark = " (replay pick)" if s["replay_pick"] else ""
        na = f"  not applicable: {s['not_applicable']}" if "not_applicable" in s else ""
        print(f"  {s['family']:<9} {s['setting']:<46} {'  '.join(cells)}{mark}{na}")
    b = entry["static_best"]
    print(
        f"  real static-best: {b['setting']} {b['ratio']:.3f} [{b['ci95'][0]:.3f}, "
        f"{b['ci95'][1]:.3f}]; replay pick: {entry['replay_pick']}"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench.grid", description=__doc__.splitlines()[0])
    ap.add_argument("--workload", required=True, help="a workload of workloads/catalog.py")
    ap.add_argument("--repeats", type=int, default=2, help="grid repeats (>= 2: the ceiling)")
    ap.add_argument("--verify-repeats", type=int, default=3, help="fresh repeats of the best")
    ap.add_argument("--samples", type=int, help="samples per run (default: sized by a probe)")
    ap.add_argument("--target-wall", type=float, default=8.0, help="a default run's wall, s")
    ap.add_argument("--size", default="default", help="data size (tiny: a quick try)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"result file (default {OUT})")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    catalog.get(args.workload)
    if args.repeats < 2:
        raise UserError(
            f"--repeats must be at least 2 (repeat 1 vs 2 is the ceiling), got {args.repeats}"
        )
    if args.verify_repeats < 3:
        raise UserError(f"--verify-repeats must be at least 3, got {args.verify_repeats}")
    if args.samples is not None and args.samples < 1:
        raise UserError(f"--samples must be positive, got {args.samples}")
    if not 1.0 <= args.target_wall <= 600.0:
        raise UserError(f"--target-wall must be 1-600 s, got {args.target_wall:g}")
    doc = load_doc(args.out)

    wl, source = recording(args.workload)
    defaults = defaults_of(wl)
    base = {"readahead": defaults["readahead"]}
    pick = replay_pick(wl) if wl is not None else None
    settings = plan(base, defaults, visited(wl), pick)
    print(
        f"{args.workload}: recording {source}; replay pick {pick}; "
        f"{len(settings)} settings, {args.repeats} repeats",
        flush=True,
    )

    # The spells of bench.online's runs: the grid's static-best is judged on the same job.
    with Workbench(args.size, spell_s=BENCH_SPELL_S) as wb:
        sizing: dict[str, Any] = {"target_wall_s": args.target_wall}
        if args.samples is None:
            rate = float(wl.rate[wl.rate > 0].mean()) if wl is not None else 0.0
            first = max(64, int(rate * PROBE_S)) if rate > 0 else None
            probe = wb.run(args.workload, first, base)
            samples = size(probe, args.target_wall)
            sizing.update(
                probe_samples=probe.samples, probe_wall_s=probe.wall_s, probe_job_s=probe.job_s
            )
            print(f"  probe {probe.line()} -> {samples} samples", flush=True)
        else:
            samples = args.samples
        grid = Grid(args.workload, samples, base, settings, sizing=sizing)
        entry = run_grid(
            wb, grid, args.repeats, args.verify_repeats, log=lambda line: print(line, flush=True)
        )
    entry["recording"] = source
    save(args.out, doc, args.workload, entry)
    show(args.workload, entry)
    print(f"\nwrote {args.out} ({args.workload}; default is {DEFAULT!r} in every repeat)")


if __name__ == "__main__":
    from workloads.jobkit import entry as run_entry

    sys.exit(run_entry(main))
