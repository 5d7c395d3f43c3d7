"""The benchmarks' job: a trainer whose threads burn CPU and report progress, and child loaders.

    python bench/telemetry/job.py SECONDS THREADS 'JSON list of child commands'

It waits for a line on stdin, starts the children (the loader role) and THREADS threads that spin
for SECONDS, reporting one sample per 20,000 loop turns through :mod:`autotune.client`; waits for
everything; prints ``done <samples>``; and holds until stdin closes, so that the bench can read
its /proc figures while it is still there.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import autotune.client as at

TURNS_PER_SAMPLE = 20_000


def spin(seconds: float, counts: list[int]) -> None:
    end = time.monotonic() + seconds
    samples = 0
    while time.monotonic() < end:
        for _ in range(TURNS_PER_SAMPLE):
            pass
        at.report(samples=1)
        samples += 1
    counts.append(samples)


def main() -> None:
    seconds, nthreads, commands = float(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    sys.stdin.readline()
    children = [
        subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in commands
    ]
    counts: list[int] = []
    threads = [threading.Thread(target=spin, args=(seconds, counts)) for _ in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in children:
        c.wait()
    for _ in range(5):  # past the client's flush period, and again if its queue was full
        time.sleep(2 * at.FLUSH_S)
        at.report()
    print(f"done {sum(counts)}", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
