"""A CPU-bound test job: THREADS threads hashing (hashlib drops the GIL on big buffers), each
hash one "sample" reported through autotune.client; runs SECONDS then exits with STATUS, or
sooner once the file STOP (when given) exists."""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from pathlib import Path

import autotune.client as at

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
THREADS = int(sys.argv[2]) if len(sys.argv) > 2 else 2
STATUS = int(sys.argv[3]) if len(sys.argv) > 3 else 0
STOP = Path(sys.argv[4]) if len(sys.argv) > 4 else None
BUF = b"x" * (1 << 20)
end = time.monotonic() + SECONDS


def burn() -> None:
    n = 0
    while time.monotonic() < end and not (STOP is not None and n % 64 == 0 and STOP.exists()):
        hashlib.sha256(BUF).digest()
        at.report(samples=1)
        n += 1


threads = [threading.Thread(target=burn) for _ in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
sys.exit(STATUS)
