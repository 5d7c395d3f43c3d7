"""The one loader every BPF telemetry source goes through.

It makes sure tracefs is mounted, compiles ``bpf/<name>.bpf.c`` with bcc (capturing the compiler's
chatter, shown only when the build fails) and turns every way this can fail into a
:class:`BpfUnavailable` whose message says why and what to do.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from autotune.bpf import source_path

TRACEFS = Path("/sys/kernel/tracing")


class BpfUnavailable(RuntimeError):
    """BPF cannot be used here; the message is one line saying why and what to do."""


def ensure_tracefs() -> None:
    """Mount tracefs when it is missing (minimal VMs boot without it); bcc attaches through it."""
    if (TRACEFS / "events").is_dir():
        return
    if os.geteuid() != 0:
        raise BpfUnavailable(f"tracefs is not mounted at {TRACEFS} and only root can mount it")
    rc = os.system(f"mount -t tracefs tracefs {TRACEFS} 2>/dev/null")
    if rc != 0 or not (TRACEFS / "events").is_dir():
        raise BpfUnavailable(f"tracefs is not mounted at {TRACEFS} and mounting it failed")


def import_bcc() -> Any:
    """Import bcc's ``BPF`` class, or say how to get it."""
    try:
        from bcc import BPF
    except ImportError as e:
        raise BpfUnavailable(
            f"bcc does not import ({e}); install python3-bpfcc and run scripts/bootstrap.sh"
        ) from e
    return BPF


class _Stderr:
    """fd 2 as it was while a compile has it, so that a thread that stops waiting for a compile
    running in another one can give it back (:func:`release_stderr`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.saved: int | None = None  # fd 2 as it was, while a compile has it
        self.released = False  # release_stderr was called: no compile takes fd 2 any more


_STDERR = _Stderr()


@contextlib.contextmanager
def _captured_stderr() -> Iterator[BinaryIO]:
    """Send fd 2 to a file for the duration: libbcc's clang writes warnings straight to it.

    The file has no name (``O_TMPFILE``): a process killed mid-compile, or one that exits while a
    compile still runs in a daemon thread, leaves nothing behind in /tmp."""
    with tempfile.TemporaryFile(prefix="autotune-bcc-") as log:
        with _STDERR.lock:
            if _STDERR.released:
                saved = -1
            else:
                saved = os.dup(2)
                os.dup2(log.fileno(), 2)
                _STDERR.saved = saved
        try:
            yield log
        finally:
            with _STDERR.lock:
                if _STDERR.saved is not None:  # not given back already
                    os.dup2(saved, 2)
                _STDERR.saved = None
                if saved >= 0:
                    os.close(saved)


def release_stderr() -> None:
    """Give fd 2 back now, and for good, while a compile still runs in another thread: its
    owner has stopped waiting for it and has things to say before it exits (the compiler's
    chatter goes to stderr from now on, for every compile after it too)."""
    with _STDERR.lock:
        _STDERR.released = True
        if _STDERR.saved is not None:
            os.dup2(_STDERR.saved, 2)
            _STDERR.saved = None


def _first_error(log: BinaryIO) -> str:
    log.seek(0)
    lines = log.read().decode(errors="replace").splitlines()
    for line in lines:
        if "error" in line.lower():
            return line.strip()
    return lines[-1].strip() if lines else "no compiler output"


def load(name: str, cflags: Sequence[str] = (), rename: Mapping[str, str] | None = None) -> Any:
    """Compile and load ``bpf/<name>.bpf.c``; tracepoints attach automatically.

    Args:
        name: the program's file stem under ``bpf/``.
        cflags: extra ``-D`` flags (filters, sizes); never C spliced into the source.
        rename: identifiers to rename in the source, whole words only (a map's name: bcc
            refuses map methods on a name that comes from a macro).

    Returns:
        The loaded ``bcc.BPF`` object.

    Raises:
        BpfUnavailable: not root, no bcc, no headers, no tracefs, or the kernel refused it.
    """
    if os.geteuid() != 0:
        raise BpfUnavailable("loading BPF programs needs root (CAP_BPF and CAP_PERFMON)")
    bpf_cls = import_bcc()
    ensure_tracefs()
    src = source_path(name)
    if not src.is_file():
        raise BpfUnavailable(f"BPF source {src} is missing from the installation")
    flags = ["-Wno-visibility", "-Wno-macro-redefined", f"-I{src.parent}", *cflags]
    source: dict[str, bytes] = {"src_file": str(src).encode()}
    if rename:
        text = src.read_text()
        for old, new in rename.items():
            text = re.sub(rf"\b{re.escape(old)}\b", new, text)
        source = {"text": text.encode()}
    with _captured_stderr() as log:
        try:
            prog = bpf_cls(**source, cflags=flags)
        except Exception as e:
            detail = _first_error(log)
            raise BpfUnavailable(f"{src.name} failed to load: {e}; compiler said: {detail}") from e
    return prog


def detach_tracepoints(programs: Iterable[Any]) -> None:
    """Detach every tracepoint of the loaded ``programs``, without waiting for the kernel; each
    program's own :meth:`bcc.BPF.cleanup` frees the rest afterwards (and finds no tracepoint left
    to detach).

    The kernel ends a tracepoint's perf event with a wait for a grace period when its last
    descriptor closes: bcc's cleanup, one tracepoint after another, took 0.95 s for the
    telemetry's 13 on this 2-core VM, and one thread per event 0.46 s (the kernel runs part of
    each under one lock), at the job's end, before the command could exit. So the events are
    disabled here (they stop firing at once) and their last references handed to a helper
    process (:func:`_hand_off`) whose exit pays those waits; this process's own close is then
    immediate. Where no helper can be started, the threads do it here.
    """
    from bcc.libbcc import lib

    programs = list(programs)
    events = [(bpf, tp, fd) for bpf in programs for tp, fd in list(bpf.tracepoint_fds.items())]
    fds = [fd for _, _, fd in events]
    helper = _hand_off(fds)
    if helper is not None:
        for fd in fds:
            lib.bpf_close_perf_event_fd(fd)  # disable, close: the helper holds the last reference
        helper.stdin.close()  # the helper ends, and its exit detaches
        threading.Thread(target=helper.wait, name="autotune-detach-reaper", daemon=True).start()
    else:
        _close_in_threads(lib, fds)
    for bpf, tp, _ in events:
        category, name = tp.split(b":")
        lib.bpf_detach_tracepoint(category, name)
        del bpf.tracepoint_fds[tp]


# The helper that takes the last references to the perf events: a program that holds its
# standard input until it closes, and needs nothing else.
_HELPER = ("cat",)


def _hand_off(fds: Sequence[int]) -> Any:
    """A helper process holding a copy of ``fds`` until its standard input is closed, or None
    where none could be started (the caller closes them itself).

    It inherits nothing else (not the command's stdout or stderr: ``autotune tune ... | tee``
    ends with the command, not with the helper), runs in a session of its own (a terminal's
    Ctrl-C does not reach it; were it killed, its exit would detach all the same), and its exit
    does the waiting. A process that dies meanwhile closes the pipe, which ends the helper too.
    """
    import shutil
    import subprocess

    exe = shutil.which(_HELPER[0]) if fds else None
    if exe is None:
        return None
    try:
        return subprocess.Popen(
            [exe, *_HELPER[1:]],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=tuple(fds),
            start_new_session=True,
        )
    except OSError:
        return None


def hand_off_perf_events() -> Any:
    """Give the perf events this process still holds to a helper before it exits, so that the
    exit does not wait for the kernel to detach them (see :func:`detach_tracepoints`); returns
    the helper, or None where there were none or none could start.

    For a process about to leave with :func:`os._exit`: a telemetry open it stopped waiting for
    (a compile the job's end left behind) may have attached its tracepoints meanwhile, and the
    exit would then wait 40-60 ms for each (0.5 s for the telemetry's 13 beside a CPU-bound
    neighbour). The helper ends when this process does (its standard input is our pipe), and
    its own exit detaches them. An event attached after this call still costs the exit its wait.
    """
    fds = []
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError, ValueError):
            if os.readlink(f"/proc/self/fd/{name}") == "anon_inode:[perf_event]":
                fds.append(int(name))
    return _hand_off(fds)


def _close_in_threads(lib: Any, fds: Sequence[int]) -> None:
    """Close the events here, one thread each: the waits for grace periods overlap."""

    def close(fd: int) -> None:
        lib.bpf_close_perf_event_fd(fd)  # ctypes lets go of the GIL: the waits overlap

    threads = [threading.Thread(target=close, args=(fd,), daemon=True) for fd in fds]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
