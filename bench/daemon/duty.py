"""A light stand-in for one training job of many on a node: it hashes for ``BUSY_MS`` out of
every ``PERIOD_MS`` (so ten of them want half a core), until SIGTERM."""

from __future__ import annotations

import hashlib
import sys
import time

BUSY_MS = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
PERIOD_MS = float(sys.argv[2]) if len(sys.argv) > 2 else 100.0
BUF = b"x" * (1 << 16)

while True:
    end = time.monotonic() + BUSY_MS / 1000
    while time.monotonic() < end:
        hashlib.sha256(BUF).digest()
    time.sleep(max(0.0, (PERIOD_MS - BUSY_MS) / 1000))
