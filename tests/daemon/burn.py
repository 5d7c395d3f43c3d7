"""A CPU-bound test job: THREADS threads hashing (hashlib drops the GIL on big buffers), each
hash one "sample" reported through autotune.client; runs SECONDS then exits with STATUS."""

from __future__ import annotations

import hashlib
import sys
import threading
import time

import autotune.client as at

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
THREADS = int(sys.argv[2]) if len(sys.argv) > 2 else 2
STATUS = int(sys.argv[3]) if len(sys.argv) > 3 else 0
BUF = b"x" * (1 << 20)
end = time.monotonic() + SECONDS


def burn() -> None:
    while time.monotonic() < end:
        hashlib.sha256(BUF).digest()
        at.report(samples=1)


threads = [threading.Thread(target=burn) for _ in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
sys.exit(STATUS)
