"""A small real multi-process job for LiveEnv tests: a trainer that burns CPU per batch, and
forked workers that read a file and hand batches over a pipe; progress via autotune.client.

It runs for SECONDS, or until the file named by ``JOB_STOP_FILE`` exists (a test that must
act while the job is certainly still running ends it that way)."""

from __future__ import annotations

import os
import sys
import time

import autotune.client as at

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
DATA = sys.argv[2] if len(sys.argv) > 2 else __file__
WORKERS = 2
STOP_FILE = os.environ.get("JOB_STOP_FILE")


def worker(w: int) -> None:
    with open(DATA, "rb") as f:
        while True:
            if not f.read(65536):
                f.seek(0)
            x = 0
            for i in range(20_000):
                x += i * w
            os.write(1 if False else pipe_w, b"b")


r, pipe_w = os.pipe()
kids = []
for w in range(WORKERS):
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            worker(w)
        finally:
            os._exit(0)
    kids.append(pid)
os.close(pipe_w)
end = time.monotonic() + SECONDS
while time.monotonic() < end and not (STOP_FILE and os.path.exists(STOP_FILE)):
    os.read(r, 1)
    x = 0
    for i in range(30_000):
        x += i
    at.report(samples=32, steps=1)
for pid in kids:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
