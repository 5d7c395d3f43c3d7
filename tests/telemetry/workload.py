"""A small multi-process job the telemetry tests drive line by line over stdin.

Commands (one per line; each answered with one line starting ``ok``):

* ``spin S N``: N new threads of this process burn CPU for S seconds; answered when done.
* ``read PATH``: read PATH sequentially in 64 KiB chunks; answered with the bytes read.
* ``touch PATH``: map PATH and touch one byte of every page (major faults when it is not
  cached); answered with the pages touched.
* ``fork S [PATH]``: fork a worker that burns S seconds (then reads PATH, with a helper thread
  spinning beside it); answered at once with its pid.
* ``reap``: wait for every worker; answered when all are gone.
* ``exit``: leave.
"""

from __future__ import annotations

import mmap
import os
import sys
import threading
import time


def spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        x += 1


def read(path: str) -> int:
    n = 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(64 << 10):
            n += len(chunk)
    return n


def touch(path: str) -> int:
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
        pages = range(0, len(m), mmap.PAGESIZE)
        return sum(1 for i in pages if m[i] >= 0)


def worker(seconds: float, path: str | None) -> None:
    spin(seconds)
    if path:
        helper = threading.Thread(target=spin, args=(0.2,))
        helper.start()
        read(path)
        helper.join()


def main() -> None:
    workers: list[int] = []
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "spin":
            threads = [
                threading.Thread(target=spin, args=(float(args[0]),)) for _ in range(int(args[1]))
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            answer = "ok"
        elif cmd == "read":
            answer = f"ok {read(args[0])}"
        elif cmd == "touch":
            answer = f"ok {touch(args[0])}"
        elif cmd == "fork":
            pid = os.fork()
            if pid == 0:
                worker(float(args[0]), args[1] if len(args) > 1 else None)
                os._exit(0)
            workers.append(pid)
            answer = f"ok {pid}"
        elif cmd == "reap":
            for pid in workers:
                os.waitpid(pid, 0)
            workers.clear()
            answer = "ok"
        elif cmd == "exit":
            return
        else:
            answer = f"error unknown command {cmd}"
        print(answer, flush=True)


if __name__ == "__main__":
    main()
