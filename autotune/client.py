"""The job side of autotune: progress reports, the in-process prefetch knob, and torch's
threads kept within the CPUs the tuner gives the trainer.

A training job integrates with two lines, and costs nothing when autotune is not running::

    import autotune.client as at
    for batch in at.count_batches(loader):   # or at.report(samples=n) yourself
        ...

When the job runs under ``autotune record`` or ``autotune tune``, the environment variable
:data:`ENV_SOCKET` names a Unix datagram socket. Reports are sent there at most every
:data:`FLUSH_S` seconds (one small datagram); a report that cannot be sent (the tuner's queue is
full) stays counted and goes with the next one, so nothing is lost. The tuner's replies (the
DataLoader prefetch depth it wants) come back on the same socket. Without the variable every call
is a no-op.

When the tuner narrows the CPUs the trainer may run on (``cpus.trainer``), a PyTorch job that
keeps its intra-op threads crowds them onto fewer cores, where OpenMP's threads spin waiting for
each other: cnn's samples/s fell by 80-90 % within a second of its trainer going from two CPUs to
one under `autotune tune` (bench/online, three sessions), while the same setting fixed before
the job started (torch then starts one thread) ran 1.17x default. So :func:`count_batches`
matches torch's thread count to the CPUs the process may use whenever they change
(:func:`apply_threads`): as many threads as CPUs where the job kept torch's default, never more
than the job's own choice where it set one; and at its first look, no more threads than CPUs
(torch counts its threads once, as it loads: a trainer pinned to one CPU after torch had loaded
and before its first batch kept two threads on it, and a cnn_noisy session ran at the default
rate for 30 s, bench/results/online_keep_all.json).

Wire format (ASCII, one datagram a message):

* job → tuner: ``P <pid> <samples> <steps>`` (counts since the last report),
  ``A prefetch <n>`` (the job applied a prefetch depth);
* tuner → job: ``S prefetch <n>``.
"""

from __future__ import annotations

import atexit
import os
import socket
import sys
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

ENV_SOCKET = "AUTOTUNE_PROGRESS"
FLUSH_S = 0.05

T = TypeVar("T")


class _Channel:
    """The job's end of the socket; created on first use, re-created after fork."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pid = os.getpid()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        # An abstract address (Linux) so the tuner can answer; nothing left on disk.
        self.sock.bind(f"\0autotune-client-{self.pid}-{id(self)}")
        self.sock.setblocking(False)
        self.samples = 0.0
        self.steps = 0.0
        self.last = 0.0
        self.prefetch: int | None = None
        self.lock = threading.Lock()
        # apply_threads: the CPUs last seen, and torch's threads as the job had them then.
        self.cpus: int | None = None
        self.threads_own: int | None = None
        self.threads_follow = False

    def send(self, text: str) -> bool:
        try:
            self.sock.sendto(text.encode(), self.path)
        except OSError:
            return False  # the tuner is gone or its queue is full: keep counting, retry later
        return True

    def drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(256)
            except (BlockingIOError, OSError):
                return
            parts = data.decode(errors="replace").split()
            if len(parts) == 3 and parts[0] == "S" and parts[1] == "prefetch":
                try:
                    self.prefetch = max(1, int(parts[2]))
                except ValueError:
                    continue

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < FLUSH_S:
            return
        if (self.samples or self.steps) and self.send(
            f"P {self.pid} {self.samples:g} {self.steps:g}"
        ):
            self.samples = self.steps = 0.0
        self.last = now
        self.drain()


_channel: _Channel | None = None


def _get() -> _Channel | None:
    global _channel  # noqa: PLW0603 - one channel per process, created lazily
    path = os.environ.get(ENV_SOCKET)
    if not path:
        return None
    if _channel is None or _channel.pid != os.getpid() or _channel.path != path:
        _channel = _Channel(path)
        atexit.register(_flush_at_exit)
    return _channel


def _flush_at_exit() -> None:
    if _channel is not None and _channel.pid == os.getpid():
        _channel.flush(force=True)


def enabled() -> bool:
    """Whether this process runs under autotune (the socket variable is set)."""
    return bool(os.environ.get(ENV_SOCKET))


def report(samples: float = 0, steps: float = 0) -> None:
    """Count ``samples`` (and/or optimizer ``steps``) as done; cheap, safe from any thread."""
    ch = _get()
    if ch is None:
        return
    with ch.lock:
        ch.samples += samples
        ch.steps += steps
        ch.flush()


def prefetch_depth(default: int | None = None) -> int | None:
    """The DataLoader prefetch depth the tuner asks for, or ``default`` if it asked none."""
    ch = _get()
    if ch is None:
        return default
    with ch.lock:
        ch.drain()
        return ch.prefetch if ch.prefetch is not None else default


def _batch_len(batch: Any) -> int:
    """Samples in a batch: the leading dimension of its first tensor-like element."""
    first = batch
    while isinstance(first, list | tuple) and first:
        first = first[0]
    if isinstance(first, dict) and first:
        first = next(iter(first.values()))
    shape = getattr(first, "shape", None)
    if shape:
        return int(shape[0])
    return len(batch) if hasattr(batch, "__len__") else 1


def count_batches(loader: Iterable[T]) -> Iterator[T]:
    """Iterate ``loader``, reporting each batch's samples and one step per batch.

    Also applies the tuner's prefetch depth to a PyTorch DataLoader (see
    :func:`apply_prefetch`) between batches.
    """
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        report(samples=_batch_len(batch), steps=1)
        apply_prefetch(it)
        apply_threads()
        yield batch


def apply_threads() -> int | None:
    """Match torch's intra-op threads to the CPUs this process may run on, once they change.

    Call it from the thread that runs the model (OpenMP's thread count is per calling thread):
    :func:`count_batches` does, between batches. The first call notes torch's threads and the
    CPUs, and lowers the threads to the CPUs where they are more; a job whose thread count
    then equals or exceeds its CPUs (torch's default) follows the CPUs, one that chose fewer
    keeps at most its own number. Returns the threads in effect, or None outside autotune or
    where torch is not loaded.
    """
    ch = _get()
    torch = sys.modules.get("torch")
    if ch is None or torch is None:
        return None
    try:
        cpus = len(os.sched_getaffinity(0))
    except OSError:
        return None
    threads = int(torch.get_num_threads())
    if ch.cpus is None:
        ch.cpus, ch.threads_own = cpus, threads
        ch.threads_follow = threads >= cpus
        if threads > cpus:
            # torch counts its threads once, as it loads: CPUs narrowed after that and before
            # this first look (the tuner acts while the job starts) leave more threads than
            # CPUs, which torch never starts by itself, and which only wait for each other.
            torch.set_num_threads(cpus)
            return cpus
        return threads
    if cpus == ch.cpus:
        return threads
    ch.cpus = cpus
    want = cpus if ch.threads_follow else min(cpus, ch.threads_own or cpus)
    if want != threads:
        torch.set_num_threads(want)
    return want


def apply_prefetch(iterator: Any) -> int | None:
    """Set a live PyTorch multi-process DataLoader iterator's prefetch depth to the tuner's wish.

    Raising the depth queues more batch indices at once; lowering it stops refilling until the
    in-flight count falls under the new limit. Returns the depth in effect, or None when the
    iterator is not a multi-process DataLoader iterator or no depth was asked.
    """
    want = prefetch_depth()
    if want is None or not hasattr(iterator, "_prefetch_factor"):
        return None
    workers = int(getattr(iterator, "_num_workers", 0))
    if workers <= 0:
        return None
    if want != iterator._prefetch_factor:
        _install_guarded_put(iterator)
        iterator._prefetch_factor = want
        # Fill up to the new limit now; a lower limit takes effect as batches drain.
        while iterator._tasks_outstanding < want * workers:
            before = iterator._tasks_outstanding
            iterator._try_put_index()
            if iterator._tasks_outstanding == before:
                break
        ch = _get()
        if ch is not None:
            ch.send(f"A prefetch {want}")
    return int(iterator._prefetch_factor)


def _install_guarded_put(iterator: Any) -> None:
    """Make ``_try_put_index`` skip, instead of failing, while above a lowered limit.

    The wrapper holds the iterator weakly and the class's function, not the bound method: a
    strong reference from the iterator's own attribute back to it would make a cycle, and the
    iterator would outlive the job's last reference to it. A loader dropped before the end of
    its data (a phase's, an epoch cut at a step count) would keep its workers streaming until
    the garbage collector found it, at any later moment, in the job's training thread, where
    shutting them down waits up to 5 s per worker (PyTorch's join timeout): mixed_io, which
    makes a new DataLoader at each spell, stalled 10 s with two workers.
    """
    if getattr(iterator, "_autotune_guarded", False):
        return
    original = type(iterator)._try_put_index
    ref = weakref.ref(iterator)

    def guarded() -> None:
        it = ref()
        if it is None or it._tasks_outstanding >= it._prefetch_factor * it._num_workers:
            return
        original(it)

    iterator._try_put_index = guarded
    iterator._autotune_guarded = True
