"""A test job whose progress the ``cpus.trainer`` knob halves by construction: every 20 ms each
of its THREADS threads reports as many samples as CPUs the kernel lets that thread run on
(``sched_getaffinity`` of the calling thread). It barely uses the CPU, so what else runs on a
shared machine does not change its rate; only its affinity does. Runs SECONDS, exits STATUS."""

from __future__ import annotations

import os
import sys
import threading
import time

import autotune.client as at

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
THREADS = int(sys.argv[2]) if len(sys.argv) > 2 else 2
STATUS = int(sys.argv[3]) if len(sys.argv) > 3 else 0
TICK_S = 0.02
end = time.monotonic() + SECONDS


def work() -> None:
    while time.monotonic() < end:
        time.sleep(TICK_S)
        at.report(samples=len(os.sched_getaffinity(0)))


threads = [threading.Thread(target=work) for _ in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
sys.exit(STATUS)
