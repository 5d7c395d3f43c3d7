"""The floor under a tuner's CPU figure: a Python process that only wakes at an interval.

    .venv/bin/python -m bench.online.waker --interval 500     # until SIGTERM or SIGINT

On a shared VM host the first touch of each page after a sleep is charged to the process that
wakes, so a process that does nothing but wake already costs CPU, more when the host is busy.
This one imports what the tuner's loop uses (numpy) and touches nothing each time it wakes; at
exit it prints ``waker X% CPU``, its CPU time over its life as a percentage of one core.
bench/daemon/footprint.py runs it beside the tuner, so the tuner's figure has its floor measured
in the same invocation.
"""

from __future__ import annotations

import argparse
import signal
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interval", type=int, default=500, help="ms between wakes")
    args = ap.parse_args()
    import numpy as np

    stop = {"now": False}

    def end(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, end)
    signal.signal(signal.SIGINT, end)
    cpu0, wall0 = time.process_time(), time.monotonic()
    while not stop["now"]:
        time.sleep(args.interval / 1000)
        np.zeros(1)  # one call into numpy, as each of the tuner's passes makes many
    share = 100 * (time.process_time() - cpu0) / max(time.monotonic() - wall0, 1e-9)
    print(f"waker {share:.2f}% CPU", flush=True)


if __name__ == "__main__":
    main()
