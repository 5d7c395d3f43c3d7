"""A real job for the actuator tests: a trainer with threads and forked loader processes.

Usage: job.py [--loaders N] [--open PATH] [--spin]. It prints ``ready`` and then obeys one
command a line on stdin, answering ``ok ...``: ``threads N [free]`` (start N more threads in the
trainer; ``free`` ones widen their own affinity first), ``fork`` (start another loader process,
itself with a thread), ``open PATH`` (hold a file open), ``quit``.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1


def idle() -> None:
    while True:
        time.sleep(3600)


def free() -> None:
    os.sched_setaffinity(0, range(os.cpu_count() or 1))
    idle()


def spin() -> None:
    while True:
        pass


def loader(work: bool, ready: int) -> None:
    threading.Thread(target=idle, daemon=True).start()
    os.write(ready, b"1")
    (spin if work else idle)()


def fork_loader(work: bool) -> int:
    """Fork a loader and return once it runs with its thread (so tests see the whole process)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            # Die with the trainer, so that no loader outlives a test that failed.
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            loader(work, w)
        finally:
            os._exit(0)
    os.read(r, 1)
    os.close(r)
    os.close(w)
    return pid


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loaders", type=int, default=2)
    ap.add_argument("--open", default=None, help="a file to hold open (as a dataset would be)")
    ap.add_argument("--spin", action="store_true", help="loaders burn CPU instead of sleeping")
    args = ap.parse_args()
    held = open(args.open, "rb") if args.open else None  # noqa: SIM115 - held for the job's life
    for _ in range(args.loaders):
        fork_loader(args.spin)
    threading.Thread(target=idle, daemon=True).start()
    opened = []
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if cmd and cmd[0] == "threads":
            # "threads N free": threads that widen their own affinity to every CPU first, as
            # a library that manages its own pool might.
            body = free if cmd[2:] == ["free"] else idle
            for _ in range(int(cmd[1])):
                threading.Thread(target=body, daemon=True).start()
            print(f"ok {threading.active_count()}", flush=True)
        elif cmd and cmd[0] == "open":
            opened.append(open(cmd[1], "rb"))  # noqa: SIM115 - held for the job's life
            print("ok", flush=True)
        elif cmd and cmd[0] == "fork":
            print(f"ok {fork_loader(args.spin)}", flush=True)
        elif cmd and cmd[0] == "quit":
            break
    del held


if __name__ == "__main__":
    main()
