"""The tuner's end of the progress channel (see :mod:`autotune.client` for the wire format)."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from autotune.client import ENV_SOCKET


@dataclass
class ProgressCounts:
    """Progress received since the last :meth:`ProgressServer.take`."""

    samples: float = 0.0
    steps: float = 0.0
    reports: int = 0
    pids: set[int] = field(default_factory=set)
    # Seconds from the last report before these counts to the last one among them (monotonic
    # clock): the time the counted work took. None when no report came, or none before it.
    span_s: float | None = None


class ProgressServer:
    """Binds the socket jobs report to; read and cleared once per interval.

    A thread receives as datagrams arrive: the kernel queues only ``net.unix.max_dgram_qlen``
    (often 10) datagrams per socket, fewer than a job sends in a long interval. Use as a context
    manager; :attr:`env` is what to add to the job's environment.
    """

    def __init__(self, path: Path | None = None) -> None:
        self._dir: str | None = None
        if path is None:
            self._dir = tempfile.mkdtemp(prefix="autotune-")
            path = Path(self._dir) / "progress.sock"
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        os.chmod(path, 0o666)  # a job may run as another user than the tuner
        # The receiving thread blocks until a datagram comes (close() wakes it with a shutdown):
        # a timeout to poll a stop flag woke it 10 times a second, per job, for nothing.
        self.clients: set[str] = set()
        self.prefetch_ack: int | None = None
        self._counts = ProgressCounts()
        self.ever_reported = False
        self._last_report: float | None = None  # when the latest report came (monotonic)
        self._span_from: float | None = None  # the last report of the previous counts
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="autotune-progress", daemon=True)
        self._thread.start()

    @property
    def env(self) -> dict[str, str]:
        return {ENV_SOCKET: str(self.path)}

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(256)
            except OSError:
                return
            if self._stop.is_set():  # woken by close()
                return
            with self._lock:
                self._handle(data, addr)

    def _handle(self, data: bytes, addr: str) -> None:
        if addr:
            self.clients.add(addr)
        parts = data.decode(errors="replace").split()
        try:
            if len(parts) == 4 and parts[0] == "P":
                self._counts.pids.add(int(parts[1]))
                self._counts.samples += float(parts[2])
                self._counts.steps += float(parts[3])
                self._counts.reports += 1
                self._last_report = time.monotonic()
                self.ever_reported = True
            elif len(parts) == 3 and parts[:2] == ["A", "prefetch"]:
                self.prefetch_ack = int(parts[2])
        except ValueError:
            pass  # a malformed datagram is dropped, never fatal

    def take(self) -> ProgressCounts:
        """Return the counts since the last call and start new ones.

        ``span_s`` is the time between the reports that bound the counts: a job reports as its
        batches end, so counts over the interval jump by whole batches (cnn: 3 or 4 batches of
        64 in 500 ms, 384 or 448 samples/s for a steady 420), while counts over the span are
        the work done in it.
        """
        with self._lock:
            counts, self._counts = self._counts, ProgressCounts()
            # Only from a report in the previous counts: after counts without one, the span
            # would reach back over them, and their zero rate would be counted twice.
            if counts.reports and self._span_from is not None and self._last_report is not None:
                counts.span_s = self._last_report - self._span_from
            self._span_from = self._last_report if counts.reports else None
        return counts

    def set_prefetch(self, depth: int) -> int:
        """Ask every client that reported to use ``depth``; returns how many were asked."""
        sent = 0
        with self._lock:
            clients = list(self.clients)
        for addr in clients:
            if _send(self.sock, f"S prefetch {depth}".encode(), addr):
                sent += 1
            else:
                with self._lock:
                    self.clients.discard(addr)
        return sent

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the receiving thread
        self._thread.join(timeout=1.0)
        self.sock.close()
        self.path.unlink(missing_ok=True)
        if self._dir:
            os.rmdir(self._dir)

    def __enter__(self) -> ProgressServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _send(sock: socket.socket, data: bytes, addr: str, tries: int = 10) -> bool:
    """One datagram to a client without blocking the caller: a client whose queue stays full
    for about 0.1 s (it stopped reading) is given up. False when it could not be sent."""
    for _ in range(tries):
        try:
            sock.sendto(data, socket.MSG_DONTWAIT, addr)
            return True
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:
            return False
    return False
