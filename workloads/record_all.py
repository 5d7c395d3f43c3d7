"""Record the bundled workloads: ``autotune record --explore`` around each job, into
``envs/workloads/<name>.parquet``.

    python -m workloads.record_all [--only cnn,shards] [--out DIR] [--hold S] [--size tiny]
        [--samples N]

One data disk serves every recording. Each job runs through the harness (cold cache, neighbour
for ``cnn_noisy``, everything restored) with ``autotune record --explore`` as its command prefix,
starting from read-ahead 128 KiB, the common kernel default (a fresh loop device here comes up
at 2560 KiB, this VM's disk at 8 MiB). A recording is written next to its final name and moved
there only when the job and the recorder both succeeded, so a failed run keeps the old one.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from autotune.errors import UserError
from autotune.knobs import READAHEAD_DEFAULT_KB
from workloads import catalog
from workloads.run import REPO, Workbench, on_sigterm

OUT = REPO / "envs" / "workloads"
START = {"readahead": READAHEAD_DEFAULT_KB}
# Samples for about three minutes of each job while exploring, on this 2-CPU VM when others leave it
# idle (measured while recording: cnn 220-420, cnn_noisy 175-240, shards 1400-2500, randread
# 900-2500, phases 600-1100 samples/s; a loaded VM takes longer): the explorer's
# one-knob-at-a-time sweep of the six knobs (18 settings) takes 54 s at a hold of 3 s, then
# random combinations follow.
SAMPLES = {
    "cnn": 81920,
    "cnn_noisy": 32768,
    "shards": 360448,
    "randread": 393216,
    "phases": 262144,
    # The first 32 spells of seed 0 (seq 37 s, random 16 s, ... at the reference rates: about
    # 12 minutes on a quiet node; the bundled recording was made at the reference rates of
    # before 2026-12-06, 756713 samples for the same spells). Enough spells that each
    # split part (60/20/20 % of the rows, in time) holds both kinds, and that the explorer
    # visits several read-ahead values in each kind: with the first four alone the test part
    # was one random spell, where no schedule beats a constant.
    "mixed_io": 2267404,
    # Timed, not counted (below): its neighbour's spells are in seconds.
    "neighbour_onoff": 10_000_000,
}
# Jobs recorded for a time rather than to a count: neighbour_onoff trains 150 s, long enough for
# the neighbour to come and go twice (seed 0: on 37 s, off 16 s, on 23 s, off 18 s, on 22 s...)
# at any rate, which varies tenfold with its weights on a loaded node.
EXTRA_ARGS: dict[str, tuple[str, ...]] = {"neighbour_onoff": ("--seconds", "150")}
TINY_SAMPLES = 256
HOLD_S = 3.0


def autotune_cmd() -> list[str]:
    """The autotune command of this checkout (its venv), or the one on PATH."""
    venv = Path(sys.executable).with_name("autotune")
    found = str(venv) if venv.exists() else shutil.which("autotune")
    if found is None:
        raise UserError("autotune is not installed (run scripts/bootstrap.sh)")
    return [found]


def record(
    names: list[str], out: Path, hold_s: float, size: str, samples: int | None = None
) -> list[Path]:
    """Record each workload (``samples`` each, default :data:`SAMPLES`); returns the files."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with Workbench(size) as wb, tempfile.TemporaryDirectory(dir=out, prefix=".rec-") as tmp:
        for name in names:
            part = Path(tmp) / f"{name}.parquet"
            prefix = [*autotune_cmd(), "record", "--explore", "--explore-hold", f"{hold_s:g}"]
            prefix += ["-o", str(part)]
            n = samples or (TINY_SAMPLES if size == "tiny" else SAMPLES[name])
            extra = () if size == "tiny" else EXTRA_ARGS.get(name, ())
            r = wb.run(name, n, START, under=shlex.join(prefix), extra_args=extra, timeout_s=1800)
            if not part.is_file():
                raise UserError(f"autotune record wrote no {part.name} for {name}")
            final = out / f"{name}.parquet"
            os.replace(part, final)
            written.append(final)
            print(
                f"record_all: {final} ({final.stat().st_size / 1e6:.2f} MB) "
                f"from {r.samples} samples in {r.wall_s:.0f} s",
                file=sys.stderr,
            )
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="workloads.record_all", description=__doc__)
    p.add_argument("--only", default=",".join(catalog.RECORDED), help="comma-separated")
    p.add_argument("--out", type=Path, default=OUT, help="where the recordings go")
    p.add_argument("--hold", type=float, default=HOLD_S, help="seconds per explored setting")
    p.add_argument("--size", default="default", choices=("default", "tiny"))
    p.add_argument("--samples", type=int, help="samples per workload (default: sized per job)")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        names = [catalog.get(n).name for n in args.only.split(",") if n]
        if not names:
            raise UserError("--only names no workload")
        if not args.hold > 0:
            raise UserError(f"--hold must be more than 0 seconds, not {args.hold:g}")
        if args.samples is not None and args.samples < 1:
            raise UserError(f"--samples must be positive, got {args.samples}")
        written = record(names, args.out, args.hold, args.size, args.samples)
    except UserError as e:
        print(f"record_all: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("record_all: interrupted; knobs, neighbour and disk restored", file=sys.stderr)
        return 130
    total = sum(f.stat().st_size for f in written)
    print(f"record_all: {len(written)} recordings, {total / 1e6:.2f} MB in all", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
