"""Upload one spool from a process of its own, while its writer runs and after it ends.

    python -m autotune.tracking.follow SPOOL_DIR

The online tuner logs through a :class:`~autotune.tracking.run.TrackedRun` with
``uploader="process"``: it only appends to its spool (no MLflow client in the tuner, which keeps
the tuner's memory under its budget; the client alone is ~85 MB) and this follower does the
uploading. While the writer runs it uploads every ``LIVE_UPLOAD_S`` and retries a store that does
not answer every ``RETRY_INTERVAL_S``; when the run has ended it makes one last attempt and
exits, leaving what did not go up to ``autotune sync`` (as an in-process run does). A writer
that dies without ending its run (kill -9) gets its run closed as KILLED.

Asked to (``--load-first``), the follower first loads the MLflow client and sends the run's
start at normal priority, then makes a ``ready`` file in the spool for its writer to wait for.
``autotune tune`` no longer asks: its job ran 3-4 s later for it (the client loads in ~3 s). So
that a short job does not have the client loaded beside it at all, a follower not asked to load
first makes its first upload ``--live-s`` after its start (or at the run's end, if sooner),
at ``SCHED_IDLE`` from its first instruction. Loading the client means importing MLflow,
SQLAlchemy and the store's schema check, ~3 s of CPU and some hundred files read from the disk
the job may be reading too; beside a random-read job that cost more than ``SCHED_IDLE`` could
hide: a `--dry-run` session, which changes nothing, ran randread (65536 samples, 6 interleaved
repeats) at 0.94 of its time alone when the client loaded after the job started, and at 0.98
when nothing was uploaded until the job ended. After that, while the writer runs, the follower
is ``SCHED_IDLE`` and uploads with CPU nobody else wants. The last upload, once the session has
ended, runs as ``SCHED_OTHER`` again (it gets some CPU beside a busy neighbour) but at nice 19:
at nice 0 its ~3 s of CPU (the client's first load, for a short job) landed on whatever started
next, and a next `autotune tune` read it as a busy node and started a quiet job at 8x weights
(4 of 40 quiet bench/online runs at 7eb8308). At nice 19 its time is in ``/proc/stat``'s
``nice`` column, which autotune.system.busy leaves out.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

from autotune.target import zombie
from autotune.tracking.run import FLUSH_INTERVAL_S, READY, RETRY_INTERVAL_S
from autotune.tracking.spool import Spool

# While the writer runs, the follower uploads at most this often unless told otherwise (`autotune
# tune` passes its tracking_live_upload_s, 60 s: the first upload loads the MLflow client, and at
# 10 s that cost a 15 s cnn job 5.6 %, bench/results/online_live_upload.json). Each upload is a
# few SQLite transactions (fdatasync each) or HTTP calls, and a follower always busy at
# SCHED_IDLE still takes the caches of the CPUs the job leaves idle: uploading each second, the
# tuner beside the cnn job used 2.4 % of a core instead of 1.9 % (workloads, 3 interleaved
# repeats).
LIVE_UPLOAD_S = 10.0
NICE = 19  # the follower's, from its first instruction to its last upload
FOLLOW_LOG = "follow.log"  # in the spool: what the follower says after its writer has ended


def _ended(spool: Spool, offset: int) -> tuple[bool, int]:
    ended = False
    for end, op in spool.ops_from(offset):
        offset = end
        ended = ended or op["op"] == "end"
    return ended, offset


def _idle(idle: bool) -> None:
    """``SCHED_IDLE`` (only CPU nobody else wants), or back to ``SCHED_OTHER``; at nice 19
    either way. The nice value changes nothing under ``SCHED_IDLE``; it puts this process's CPU
    time in ``/proc/stat``'s ``nice`` column, which a session starting beside it does not count
    as other tasks' demand (autotune.system.busy), and keeps the last upload behind anything at
    nice 0."""
    policy = os.SCHED_IDLE if idle else os.SCHED_OTHER
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, policy, os.sched_param(0))
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, NICE)


def _let_go_of_stderr(path: Path) -> None:
    """Once the writer's run has ended, say what is left to say in ``follow.log`` in the
    spool, which stays with what did not go up (the writer has already said where that is,
    and that `autotune sync` uploads it): stderr is a pipe the writer reads and passes on
    while it lives (autotune.tracking.run), and it is about to exit."""
    try:
        fd = os.open(path / FOLLOW_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:
        fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 2)
    os.close(fd)


def _say(path: Path, text: str) -> None:
    """Write ``text`` to fd 2; to ``follow.log`` when the writer has gone (a broken pipe).
    Unbuffered: a line that failed on the pipe is not left in a buffer to be written again."""
    data = text.encode()
    try:
        os.write(2, data)
    except OSError:
        _let_go_of_stderr(path)
        with contextlib.suppress(OSError):
            os.write(2, data)


def follow(
    path: Path,
    retry_s: float = RETRY_INTERVAL_S,
    load_first: bool = False,
    live_s: float = LIVE_UPLOAD_S,
) -> int:
    """Upload ``path`` while its writer runs; once the run has ended, make one last attempt
    holding the spool's lock, and leave what did not go up to ``autotune sync``.

    With ``load_first``, the first upload (which loads the MLflow client) runs at normal
    priority before the ``ready`` file is made; every upload after it runs at ``SCHED_IDLE``,
    one every ``live_s`` at most (0: none), until the run ends.

    Returns 0 when the run is wholly uploaded (or someone else finished it), 1 otherwise.
    """
    if not load_first:
        _idle(True)  # before the imports and the MLflow client: CPU nobody else wants
    from autotune.tracking import store
    from autotune.tracking.upload import Unreachable, describe, fully_uploaded, upload

    spool = Spool.open(path)
    meta = spool.meta()
    uri, writer = str(meta["tracking_uri"]), int(meta["pid"])
    client = None
    ended, offset, next_try, told, let_go = False, 0, 0.0, False, False

    def attempt() -> bool:
        nonlocal client, next_try, told
        try:
            if client is None:
                client = store.client(uri)
            result = upload(spool, client, uri)
            if fully_uploaded(spool, uri) and result.run_id:
                spool.remove(result.run_id)
                return True
        except Exception as e:
            next_try = time.monotonic() + retry_s
            if not told:
                told = True
                why = str(e) if isinstance(e, Unreachable) else describe(e)
                _say(
                    path,
                    f"autotune: tracking store {uri}: {why}; the run is kept in {path} and "
                    "uploads when the store answers, or with `autotune sync`\n",
                )
        return False

    if load_first:
        attempt()
        with contextlib.suppress(OSError):
            (path / READY).touch()
    _idle(True)
    live = live_s > 0
    next_live = time.monotonic() + live_s  # not at once: a short job never sees it
    while True:
        if not path.is_dir():
            return 0  # someone else (autotune sync) finished it
        seen, offset = _ended(spool, offset)
        ended = ended or seen
        if ended or zombie(writer):
            # The writer is done (it released the spool's lock when it closed it), or dead.
            # Holding the lock keeps `autotune sync` and this follower from racing.
            if not let_go:
                _let_go_of_stderr(path)
                let_go = True
            _idle(False)
            if not spool.try_lock():
                if zombie(writer) and not ended:
                    return 1  # a dead writer's spool that someone else holds: theirs now
                time.sleep(FLUSH_INTERVAL_S)
                continue
            try:
                if not path.is_dir():
                    return 0
                if not ended:
                    spool.seal("KILLED")  # the writer died without ending its run
                return 0 if attempt() else 1
            finally:
                spool.unlock()
        now = time.monotonic()
        if live and now >= next_try and now >= next_live:
            attempt()
            next_live = now + live_s
        time.sleep(FLUSH_INTERVAL_S)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Upload one tracking spool as it grows.")
    ap.add_argument("spool", type=Path)
    ap.add_argument("--retry-s", type=float, default=RETRY_INTERVAL_S)
    ap.add_argument(
        "--load-first",
        action="store_true",
        help="load the MLflow client and upload once at normal priority, then make the ready file",
    )
    ap.add_argument(
        "--live-s",
        type=float,
        default=LIVE_UPLOAD_S,
        help="upload at most this often while the writer runs (0: only once its run has ended)",
    )
    args = ap.parse_args(argv)
    return follow(args.spool, args.retry_s, args.load_first, args.live_s)


if __name__ == "__main__":
    sys.exit(main())
