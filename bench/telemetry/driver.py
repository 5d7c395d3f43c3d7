"""A recorder without the trace file: the collector at a fixed interval, as ``autotune record``.

    python -m bench.telemetry.driver PID [--interval-ms 250]

Opens the collector on PID, says ``ready <seconds to open>`` on stderr, then every interval takes
a sample, featurizes it and builds its trace row (what the recorder does before writing), until
the target exits; then says ``rows <n> first <seconds from start to the first row>``. The
overhead bench runs it to tell the collector's own cost from the trace writer's.
"""

from __future__ import annotations

import argparse
import sys
import time

from autotune.target import Target
from autotune.telemetry.collector import open_collector
from autotune.trace import sample_to_row


def main() -> None:
    start = time.monotonic()
    ap = argparse.ArgumentParser()
    ap.add_argument("pid", type=int)
    ap.add_argument("--interval-ms", type=int, default=250)
    args = ap.parse_args()
    interval = args.interval_ms / 1000
    target = Target.from_pid(args.pid)
    rows = 0
    first = 0.0
    with open_collector(target, interval_s=interval, require_bpf=True) as col:
        opened = time.monotonic()
        print(f"ready {opened - start:.3f}", file=sys.stderr, flush=True)
        tick = 0
        while col.alive():
            tick += 1
            time.sleep(max(0.0, opened + tick * interval - time.monotonic()))
            sample_to_row(col.sample())  # featurizes too
            rows += 1
            if rows == 1:
                first = time.monotonic() - start
    print(f"rows {rows} first {first:.3f}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
